"""Publishing on Bluesky exactly once: every record has a deterministic record key.

Each part's rkey is a TID made from the publication (its first attempt's second, its id, and
the part's number), so a retry after a crash or timeout asks for the same record: it is found
with ``com.atproto.repo.getRecord`` and adopted, never created twice (and ``createRecord``
itself refuses a second record with the same key).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from atproto import Client, models
from atproto.exceptions import (
    AtProtocolError,
    BadRequestError,
    NetworkError,
    RequestException,
    UnauthorizedError,
)

from connectors.base import AccountRef
from connectors.publishing import OutgoingPost, Progress, Published, PublishError

T = TypeVar("T")
POST = "app.bsky.feed.post"
_B32 = "234567abcdefghijklmnopqrstuvwxyz"


def tid(micros: int, clock_id: int) -> str:
    """A TID (13 characters of sortable base32): 53 bits of microseconds, 10 of clock id."""
    value = ((micros & ((1 << 53) - 1)) << 10) | (clock_id & 0x3FF)
    out = []
    for _ in range(13):
        out.append(_B32[value & 31])
        value >>= 5
    return "".join(reversed(out))


def record_key(post: OutgoingPost, part: int) -> str:
    """The rkey of ``part``: the first attempt's second, the publication id in the microseconds
    (unique per account), the part as clock id."""
    stamp = post.created_at or datetime(2000, 1, 1, tzinfo=UTC)
    micros = int(stamp.timestamp()) * 1_000_000 + post.serial % 1_000_000
    return tid(micros, part)


def _rkey_of(uri: str) -> str:
    return uri.rsplit("/", 1)[-1]


class BlueskyPublisher:
    """Publishes with an atproto ``Client`` logged in as the school's account."""

    def __init__(self, client: Client, did: str) -> None:
        self.client = client
        self.did = did

    @classmethod
    def for_account(cls, account: AccountRef) -> BlueskyPublisher:
        """Log in with the account's app password."""
        password = account.credentials.get("app_password")
        if not password:
            raise PublishError(
                f"bluesky account {account.key!r} needs an app_password to post", permanent=True
            )
        service = str(account.options.get("service_url") or "https://bsky.social")
        client = Client(base_url=service)
        profile = _call(lambda: client.login(account.handle, password))
        return cls(client, str(profile.did))

    def _existing(self, rkey: str) -> Any | None:
        try:
            return self.client.com.atproto.repo.get_record(
                models.ComAtprotoRepoGetRecord.Params(repo=self.did, collection=POST, rkey=rkey)
            )
        except BadRequestError:
            return None  # RecordNotFound
        except AtProtocolError as exc:
            raise _translate(exc) from exc

    def _ref(self, uri: str) -> models.ComAtprotoRepoStrongRef.Main:
        found = self._existing(_rkey_of(uri))
        if found is None or not found.cid:
            raise PublishError(f"bluesky lost part {uri}", permanent=True)
        return models.ComAtprotoRepoStrongRef.Main(uri=found.uri, cid=str(found.cid))

    def publish(self, post: OutgoingPost, done: Sequence[str], progress: Progress) -> Published:
        """Each part in turn, with its fixed rkey; a part already there is adopted."""
        ids = list(done)
        refs = [self._ref(uri) for uri in ids]
        created = (post.created_at or datetime.now(UTC)).astimezone(UTC)
        for index in range(len(ids), len(post.parts)):
            rkey = record_key(post, index)
            found = self._existing(rkey) if post.retry else None
            if found is not None:
                ref = models.ComAtprotoRepoStrongRef.Main(uri=found.uri, cid=str(found.cid))
            else:
                embed = None
                if index == 0 and post.images:
                    images = []
                    for image in post.images:
                        blob = _call(partial(self.client.upload_blob, image.data)).blob
                        images.append(models.AppBskyEmbedImages.Image(alt=image.alt, image=blob))
                    embed = models.AppBskyEmbedImages.Main(images=images)
                reply = (
                    models.AppBskyFeedPost.ReplyRef(root=refs[0], parent=refs[-1]) if refs else None
                )
                record = models.AppBskyFeedPost.Record(
                    text=post.parts[index],
                    created_at=created.isoformat().replace("+00:00", "Z"),
                    embed=embed,
                    reply=reply,
                )
                try:
                    made = self.client.com.atproto.repo.create_record(
                        models.ComAtprotoRepoCreateRecord.Data(
                            repo=self.did, collection=POST, rkey=rkey, record=record
                        )
                    )
                    ref = models.ComAtprotoRepoStrongRef.Main(uri=made.uri, cid=made.cid)
                except BadRequestError as exc:
                    again = self._existing(rkey)  # a concurrent or earlier attempt made it
                    if again is None:
                        raise _translate(exc) from exc
                    ref = models.ComAtprotoRepoStrongRef.Main(uri=again.uri, cid=str(again.cid))
                except AtProtocolError as exc:
                    raise _translate(exc) from exc
            refs.append(ref)
            ids.append(ref.uri)
            progress(list(ids))
        handle_rkey = _rkey_of(ids[0])
        return Published(
            ids=tuple(ids), url=f"https://bsky.app/profile/{self.did}/post/{handle_rkey}"
        )

    def withdraw(self, ids: Sequence[str]) -> None:
        """Delete each part's record, replies first (deleting a missing record is fine)."""
        for uri in reversed(list(ids)):
            _call(
                partial(
                    self.client.com.atproto.repo.delete_record,
                    models.ComAtprotoRepoDeleteRecord.Data(
                        repo=self.did, collection=POST, rkey=_rkey_of(uri)
                    ),
                )
            )


def _translate(exc: AtProtocolError) -> PublishError:
    if isinstance(exc, UnauthorizedError):
        return PublishError("bluesky refused the login", permanent=True)
    if isinstance(exc, BadRequestError):
        return PublishError(f"bluesky refused the post: {exc}", permanent=True)
    if isinstance(exc, NetworkError | RequestException):
        return PublishError(f"bluesky unreachable: {type(exc).__name__}")
    return PublishError(f"bluesky error: {type(exc).__name__}")


def _call(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except AtProtocolError as exc:
        raise _translate(exc) from exc
