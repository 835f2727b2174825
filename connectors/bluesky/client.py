"""The Bluesky client: sessions, calls, cursors and walking newest-first listings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

import httpx
from atproto import Client, models
from atproto.exceptions import (
    AtProtocolError,
)
from atproto_client.client.session import Session, SessionEvent
from atproto_client.request import Request

from connectors.base import (
    AccountRef,
    AuthError,
    Author,
    Capability,
    Connector,
    ConnectorError,
    Gone,
    Item,
    NotSupported,
    RateLimited,
    SessionStore,
    TransientError,
    raw_json,
)
from connectors.bluesky.errors import _token_problem, _translate
from connectors.bluesky.records import (
    DEFAULT_PUBLIC_URL,
    DEFAULT_SERVICE_URL,
    WEB_URL,
    _author_did,
    _ms,
    _parse_time,
    _split_uri,
)
from connectors.bluesky.session import _process_store
from connectors.paging import CursorFormat
from connectors.retry import with_retries
from monitor.constants import ItemKind, Platform

T = TypeVar("T")


CURSORS = CursorFormat("Bluesky", prefix="bsky1:")


@dataclass(frozen=True)
class _Entry:
    """One row of a newest-first listing: identity, sort time and what it carries."""

    uri: str
    ts: int  # sort time, epoch milliseconds
    payload: Any = None  # None: it orders the listing but is never delivered


@dataclass(frozen=True)
class _Walk:
    """What walking a newest-first listing found."""

    new: list[_Entry]
    mark: dict[str, Any]
    more: bool


class BlueskyClient(Connector):
    """Bluesky through the PDS (app password) or the public AppView (read-only)."""

    PUBLIC_CAPABILITIES: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.OWN_POSTS, Capability.REPLIES, Capability.MENTIONS}
    )

    def __init__(self, account: AccountRef, *, session_store: SessionStore | None = None) -> None:
        super().__init__(account)
        options = account.options
        self.service_url = str(options.get("service_url") or DEFAULT_SERVICE_URL).rstrip("/")
        self.public_url = str(options.get("public_url") or DEFAULT_PUBLIC_URL).rstrip("/")
        self.search_lang: str | None = options.get("search_lang") or None
        self.timeout = float(options.get("timeout", 15.0))
        self.retries = int(options.get("retries", 2))
        self.page_size = int(options.get("page_size", 50))
        self.max_pages = max(1, int(options.get("max_pages", 5)))
        self.max_threads = max(1, int(options.get("max_threads_per_poll", 25)))
        self.overlap_ms = int(float(options.get("overlap_seconds", 600)) * 1000)
        self.backfill = timedelta(days=float(options.get("backfill_days", 7)))
        self.report_service_did: str | None = options.get("report_service_did") or None
        self._password = account.credentials.get("app_password") or None
        if self._password and session_store is None:
            session_store = _process_store(self.service_url, account.handle, self._password)
        self._store = session_store
        self._requests = 0
        self._client: Any = None  # PDS client (authenticated) or public AppView client
        self._public: Any = None  # public AppView client, for what blocks hide from us
        self.did: str | None = None
        self.handle = account.handle

    # ------------------------------------------------------------ session

    @property
    def authenticated(self) -> bool:
        """Whether this connector acts as the account (app password) or reads publicly."""
        return self._password is not None

    def _count(self, _request: httpx.Request) -> None:
        self._requests += 1

    def _new_client(self, base_url: str) -> Any:
        request = Request(timeout=self.timeout, event_hooks={"request": [self._count]})
        return Client(base_url=base_url, request=request)

    def connect(self) -> frozenset[Capability]:
        """Reuse the stored session (or log in once); public mode resolves the handle."""
        self.close()
        if not self._password:
            self._client = self._public = self._new_client(self.public_url)
            self.did = self._resolve_did(self.account.handle)
            self.granted = self.PUBLIC_CAPABILITIES
            return self.granted
        self._client = self._new_client(self.service_url)
        self._client.on_session_change(self._on_session_change)
        stored = self._store.get() if self._store else None
        if stored and self._session_matches(stored):
            # Importing makes no request; an expired token is refreshed on first use.
            self._client.login(session_string=stored, fetch_bsky_profile=False)
        else:
            self._login()
        session = self._client._session  # the library keeps the session here; no public getter
        self.did, self.handle = session.did, session.handle
        self.granted = self.CAPABILITIES
        return self.granted

    def _session_matches(self, stored: str) -> bool:
        try:
            session = Session.decode(stored)
        except ValueError:
            return False
        wanted = self.account.handle.lower().lstrip("@")
        return wanted in {session.handle.lower(), session.did.lower()}

    def use_session_store(self, store: SessionStore) -> None:
        """Keep the session in ``store`` (the core's persistent one); call before ``connect``."""
        if self._password:
            self._store = store

    def _on_session_change(self, event: SessionEvent, session: Session) -> None:
        if self._store is not None and event in (SessionEvent.CREATE, SessionEvent.REFRESH):
            self._store.set(session.export())

    def _login(self) -> None:
        # createSession goes to the entryway; the session then points at the account's PDS.
        self._client.update_base_url(self.service_url)
        try:
            self._client.login(
                login=self.account.handle.lstrip("@"),
                password=self._password,
                fetch_bsky_profile=False,
            )
        except (AtProtocolError, httpx.HTTPError) as exc:
            error = _translate(exc)
            if isinstance(error, (RateLimited, TransientError)):
                raise error from exc
            raise AuthError(f"Bluesky login failed for {self.account.handle!r}: {error}") from exc

    def _renew_session(self) -> None:
        """Refresh the session, else take a newer stored one, else log in again."""
        current = self._client._session.export() if self._client._session else None
        try:
            # The library refreshes by itself only shortly before expiry; this is its
            # own refresh call (no public one), used when the server refused the token.
            self._client._refresh_and_set_session()
            return
        except (AtProtocolError, httpx.HTTPError) as exc:
            error = _translate(exc)
            if isinstance(error, (RateLimited, TransientError)):
                raise error from exc
        # Refresh tokens are single-use: another process may have refreshed first and
        # stored the result. Take that session rather than spend a createSession.
        stored = self._store.get() if self._store else None
        if stored and stored != current and self._session_matches(stored):
            self._client.login(session_string=stored, fetch_bsky_profile=False)
            return
        self._login()

    def _connected(self) -> Any:
        if self._client is None:
            self.connect()
        return self._client

    def _public_client(self) -> Any:
        if self._public is None:
            self._public = self._new_client(self.public_url)
        return self._public

    def close(self) -> None:
        """Release the HTTP connections (the session stays in its store)."""
        for client in {id(c): c for c in (self._client, self._public) if c is not None}.values():
            client.request.close()
        self._client = self._public = None

    # ------------------------------------------------------------ calling

    def _call(self, fn: Callable[[], T], *, idempotent: bool = True) -> T:
        """Run one library call, translating errors; idempotent reads are retried."""
        if idempotent and self.retries > 0:
            return with_retries(lambda: self._guarded(fn), attempts=self.retries, base=0.25, cap=2)
        return self._guarded(fn)

    def _guarded(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (AtProtocolError, httpx.HTTPError) as exc:
            if not self._password:
                # No credentials to be wrong: the public API refuses this (Bluesky
                # often closes unauthenticated search), so it is not possible here.
                error = _translate(exc)
                if isinstance(error, AuthError):
                    raise NotSupported(
                        f"Bluesky refused an unauthenticated request ({error}); "
                        "give the account an app password"
                    ) from exc
                raise error from exc
            if not _token_problem(exc):
                raise _translate(exc) from exc
        # The access token expired or was rejected: renew once and try again.
        self._renew_session()
        try:
            return fn()
        except (AtProtocolError, httpx.HTTPError) as exc:
            error = _translate(exc)
            if _token_problem(exc):
                error = AuthError(f"Bluesky rejected the renewed session: {error}")
            raise error from exc

    def _resolve_did(self, actor: str) -> str:
        actor = actor.lstrip("@")
        if actor.startswith("did:"):
            return actor
        params = models.ComAtprotoIdentityResolveHandle.Params(handle=actor)
        try:
            response = self._call(lambda: self._client.com.atproto.identity.resolve_handle(params))
        except Gone as exc:
            raise AuthError(f"Bluesky handle {actor!r} does not resolve") from exc
        except ConnectorError as exc:
            if type(exc) is ConnectorError:  # 400 "Unable to resolve handle"
                raise AuthError(f"Bluesky handle {actor!r} does not resolve: {exc}") from exc
            raise
        return str(response.did)

    # ------------------------------------------------------------ cursors

    def _load(self, cursor: str | None) -> dict[str, Any]:
        return CURSORS.load_or_start(cursor, self.account.key)

    @staticmethod
    def _dump(state: Mapping[str, Any]) -> str:
        return CURSORS.dump(state)

    def _floor(self) -> int:
        return _ms(datetime.now(UTC) - self.backfill)

    def _walk(
        self,
        mark: Mapping[str, Any],
        fetch: Callable[[str | None], tuple[list[_Entry], str | None, bool]],
    ) -> _Walk:
        """Walk a newest-first listing down to what an earlier poll already saw.

        ``fetch(api_cursor)`` returns one page: entries, the next API cursor and
        whether the page was full. ``mark`` is this listing's part of the cursor.
        """
        top: int | None = mark.get("top")
        seen: dict[str, int] = dict(mark.get("seen", {}))
        back: Mapping[str, Any] = mark.get("back") or {}
        api_cursor: str | None = back.get("c")
        found: dict[str, int] = dict(back.get("acc", {}))  # entries met by this walk
        floor = top - self.overlap_ms if top is not None else int(mark.get("floor", self._floor()))
        new: list[_Entry] = []
        delivered: set[str] = set()
        for page in range(1, self.max_pages + 1):
            entries, next_cursor, full = fetch(api_cursor)
            ended = False
            for entry in entries:
                if entry.ts < floor:
                    ended = True
                    break
                found[entry.uri] = max(entry.ts, found.get(entry.uri, entry.ts))
                if entry.uri in seen or entry.uri in delivered or entry.payload is None:
                    continue
                delivered.add(entry.uri)
                new.append(entry)
            if found:  # keep only the overlap window behind the newest entry met
                newest = max(found.values())
                found = {u: t for u, t in found.items() if t >= newest - self.overlap_ms}
            if ended or not next_cursor or not full or not entries:
                break
            if page == self.max_pages:  # bounded work: continue this backlog next poll
                backlog = {"c": next_cursor, "acc": found}
                state = {"top": top, "seen": seen, "back": backlog}
                if top is None:
                    state["floor"] = floor
                return _Walk(new, state, more=True)
            api_cursor = next_cursor
        candidates = [t for t in (top, *found.values()) if t is not None]
        if not candidates:
            return _Walk(new, {"top": None, "seen": {}}, more=False)
        new_top = max(candidates)
        window = {**seen, **found}
        seen = {u: t for u, t in window.items() if t >= new_top - self.overlap_ms}
        return _Walk(new, {"top": new_top, "seen": seen}, more=False)

    # ------------------------------------------------------------ items

    def _own_did(self) -> str:
        self._connected()
        if not self.did:
            raise AuthError("not logged in to Bluesky")
        return self.did

    def _get_record(self, uri: str) -> dict[str, Any]:
        """Read a record from its repository (strongly consistent on its own PDS)."""
        repo, collection, rkey = _split_uri(uri)
        params = models.ComAtprotoRepoGetRecord.Params(repo=repo, collection=collection, rkey=rkey)
        response = self._call(lambda: self._client.com.atproto.repo.get_record(params))
        return raw_json(response)

    def _kind_of(self, view: Mapping[str, Any]) -> ItemKind:
        if view.get("record", {}).get("reply"):
            return ItemKind.REPLY
        return ItemKind.POST if _author_did(view) == self.did else ItemKind.MENTION

    def _item(self, view: Mapping[str, Any], kind: ItemKind) -> Item:
        """An Item from a post view (camelCase JSON, as the AppView sends it)."""
        record = view.get("record", {})
        author = view.get("author", {})
        did = str(author.get("did", _split_uri(view["uri"])[0]))
        handle = str(author.get("handle") or did)
        profile = did if handle in ("", "handle.invalid") else handle
        reply = record.get("reply") or {}
        created = _parse_time(record.get("createdAt"), fallback=view.get("indexedAt"))
        engagement = {
            "likes": int(view.get("likeCount") or 0),
            "reposts": int(view.get("repostCount") or 0),
            "replies": int(view.get("replyCount") or 0),
            "quotes": int(view.get("quoteCount") or 0),
        }
        return Item(
            platform=Platform.BLUESKY,
            platform_id=view["uri"],
            kind=kind,
            url=f"{WEB_URL}/profile/{profile}/post/{_split_uri(view['uri'])[2]}",
            author=Author(id=did, handle=handle, display_name=author.get("displayName") or None),
            text=str(record.get("text", "")),
            created_at=created,
            parent_id=(reply.get("parent") or {}).get("uri"),
            root_id=(reply.get("root") or {}).get("uri"),
            is_own=did == self.did,
            engagement=engagement,
            raw=dict(view),
        )
