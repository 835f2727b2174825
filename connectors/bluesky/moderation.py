"""Acting on Bluesky: hide (threadgates), block, mute, report, reply, delete."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from atproto import models
from atproto_client.utils import facet_detection

from connectors.base import (
    AuthError,
    Author,
    Capability,
    ConnectorError,
    Gone,
    Item,
    NotSupported,
    RateLimited,
    raw_json,
)
from connectors.bluesky.reading import BlueskyReader
from connectors.bluesky.records import (
    BLOCK_COLLECTION,
    MAX_HIDDEN_REPLIES,
    POST_COLLECTION,
    THREADGATE_COLLECTION,
    _now_iso,
    _reason_type,
    _split_uri,
)
from monitor.constants import ItemKind


class BlueskyModerator(BlueskyReader):
    """The moderation actions."""

    # ------------------------------------------------------------ acting

    def _gated_root(self, item: Item) -> str:
        """The root of the thread ``item`` replies in, which must be the account's own post."""
        did = self._own_did()
        root = item.root_id or item.parent_id
        if root is None:
            raise NotSupported("only replies can be hidden on Bluesky; this post is not a reply")
        if _split_uri(root)[0] != did:
            raise NotSupported(
                "Bluesky hides replies only in threads the account started "
                f"(thread root {root} belongs to someone else)"
            )
        return root

    def _read_gate(self, root_uri: str) -> tuple[dict[str, Any] | None, str | None]:
        did, _, rkey = _split_uri(root_uri)
        try:
            found = self._get_record(f"at://{did}/{THREADGATE_COLLECTION}/{rkey}")
        except Gone:
            return None, None
        return dict(found["value"]), str(found["cid"])

    def _write_gate(self, root_uri: str, record: dict[str, Any], swap: str | None) -> None:
        did, _, rkey = _split_uri(root_uri)
        client = self._client
        if swap is None:
            data = models.ComAtprotoRepoCreateRecord.Data(
                repo=did, collection=THREADGATE_COLLECTION, rkey=rkey, record=record
            )
            self._call(lambda: client.com.atproto.repo.create_record(data), idempotent=False)
        else:
            put = models.ComAtprotoRepoPutRecord.Data(
                repo=did,
                collection=THREADGATE_COLLECTION,
                rkey=rkey,
                record=record,
                swap_record=swap,
            )
            self._call(lambda: client.com.atproto.repo.put_record(put), idempotent=False)

    def _change_gate(self, root: str, change: Callable[[list[str]], list[str]]) -> None:
        """Rewrite the root post's threadgate hiddenReplies with ``change``."""
        for attempt in range(2):  # a concurrent edit makes the swap fail: re-read once
            record, cid = self._read_gate(root)
            hidden = list((record or {}).get("hiddenReplies", []))
            changed = change(hidden)
            if changed == hidden:
                return
            if record is None:
                self._get_record(root)  # raises Gone when the thread root was deleted
                record = {"$type": THREADGATE_COLLECTION, "post": root, "createdAt": _now_iso()}
            # Only hiddenReplies changes: "allow" (who may reply) is kept exactly,
            # and absent stays absent (an empty list would stop all replies).
            record["hiddenReplies"] = changed
            try:
                self._write_gate(root, record, cid)
                return
            except ConnectorError as exc:
                conflict = "InvalidSwap" in str(exc) or "already exists" in str(exc).lower()
                if attempt or not conflict or isinstance(exc, (AuthError, RateLimited)):
                    raise

    def hide(self, item: Item) -> None:
        """Hide a reply in the account's own thread via the root post's threadgate."""
        self.require(Capability.HIDE)
        root = self._gated_root(item)
        self._get_record(item.platform_id)  # raises Gone when the reply was deleted

        def add(hidden: list[str]) -> list[str]:
            if item.platform_id in hidden:
                return hidden
            if len(hidden) >= MAX_HIDDEN_REPLIES:
                raise NotSupported(
                    f"Bluesky allows at most {MAX_HIDDEN_REPLIES} hidden replies per thread; "
                    f"the thread {root} is full, so this reply cannot be hidden"
                )
            return [*hidden, item.platform_id]

        self._change_gate(root, add)

    def unhide(self, item: Item) -> None:
        """Take a reply off the root post's threadgate hidden list."""
        self.require(Capability.UNHIDE)
        root = self._gated_root(item)
        self._change_gate(root, lambda hidden: [u for u in hidden if u != item.platform_id])

    def _viewer(self, author: Author) -> dict[str, Any]:
        params = models.AppBskyActorGetProfile.Params(actor=author.id)
        profile = self._call(lambda: self._client.app.bsky.actor.get_profile(params))
        viewer: dict[str, Any] = raw_json(profile).get("viewer", {})
        return viewer

    def block(self, author: Author) -> None:
        """Block the author (a graph.block record); already blocked is fine."""
        self.require(Capability.BLOCK)
        did = self._own_did()
        if self._viewer(author).get("blocking"):
            return
        record = models.AppBskyGraphBlock.Record(subject=author.id, created_at=_now_iso())
        data = models.ComAtprotoRepoCreateRecord.Data(
            repo=did, collection=BLOCK_COLLECTION, record=record
        )
        self._call(lambda: self._client.com.atproto.repo.create_record(data), idempotent=False)

    def mute(self, author: Author) -> None:
        """Mute the author (private to the account); already muted is fine."""
        self.require(Capability.MUTE)
        self._own_did()
        if self._viewer(author).get("muted"):
            return
        data = models.AppBskyGraphMuteActor.Data(actor=author.id)
        self._call(lambda: self._client.app.bsky.graph.mute_actor(data), idempotent=False)

    def report(self, item: Item, *, reason: str) -> str | None:
        """Report the post to the moderation service; returns the report id."""
        self.require(Capability.REPORT)
        self._own_did()
        found = self._get_record(item.platform_id)  # raises Gone; gives the current cid
        subject = models.ComAtprotoRepoStrongRef.Main(uri=item.platform_id, cid=found["cid"])
        data = models.ComAtprotoModerationCreateReport.Data(
            reason_type=_reason_type(reason), reason=reason[:2000], subject=subject
        )
        if not self.report_service_did:  # the PDS sends it to its own report service
            create = self._client.com.atproto.moderation.create_report
            return str(self._call(partial(create, data), idempotent=False).id)
        labeler = self._client.AtprotoServiceType.ATPROTO_LABELER
        proxied = self._client.with_proxy(labeler, self.report_service_did)
        try:
            create = proxied.com.atproto.moderation.create_report
            return str(self._call(partial(create, data), idempotent=False).id)
        finally:
            proxied.request.close()

    def reply(self, item: Item, text: str) -> Item:
        """Reply publicly as the account; returns the new post."""
        self.require(Capability.REPLY)
        did = self._own_did()
        parent = self._get_record(item.platform_id)  # raises Gone
        parent_ref = {"uri": parent["uri"], "cid": parent["cid"]}
        root_ref = parent.get("value", {}).get("reply", {}).get("root") or parent_ref
        record: dict[str, Any] = {
            "$type": POST_COLLECTION,
            "text": text,
            "createdAt": _now_iso(),
            "langs": ["en"],
            "reply": {"root": root_ref, "parent": parent_ref},
        }
        facets = facet_detection.detect_facets(text)  # links and tags; no network
        if facets:
            record["facets"] = [raw_json(f) for f in facets]
        data = models.ComAtprotoRepoCreateRecord.Data(
            repo=did, collection=POST_COLLECTION, record=record
        )
        try:
            created = self._call(
                lambda: self._client.com.atproto.repo.create_record(data), idempotent=False
            )
        except ConnectorError as exc:
            if type(exc) is ConnectorError and "InvalidRecord" in str(exc):
                raise NotSupported(f"Bluesky refused the reply: {exc}") from exc
            raise
        view = {
            "uri": created.uri,
            "cid": created.cid,
            "author": {"did": did, "handle": self.handle},
            "record": record,
            "indexedAt": record["createdAt"],
        }
        return self._item(view, ItemKind.REPLY)

    def delete_own(self, item: Item) -> None:
        """Delete a post the account itself wrote."""
        self.require(Capability.DELETE_OWN)
        did = self._own_did()
        repo, collection, rkey = _split_uri(item.platform_id)
        if repo != did:
            raise NotSupported("Bluesky accounts can delete only their own posts")
        self._get_record(item.platform_id)  # raises Gone when already deleted
        data = models.ComAtprotoRepoDeleteRecord.Data(repo=did, collection=collection, rkey=rkey)
        self._call(lambda: self._client.com.atproto.repo.delete_record(data), idempotent=False)
