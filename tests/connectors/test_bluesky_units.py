"""Bluesky connector logic that needs no network: cursors, matching, error translation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from atproto.exceptions import (
    BadRequestError,
    InvokeTimeoutError,
    NetworkError,
    RateLimitExceededError,
    RequestException,
    UnauthorizedError,
)
from atproto_client.models.common import XrpcError
from atproto_client.request import Response
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.base import (
    AccountRef,
    AuthError,
    Capability,
    ConnectorError,
    Gone,
    NotSupported,
    RateLimited,
    TransientError,
)
from connectors.bluesky import BlueskyConnector, MemorySessionStore
from connectors.bluesky.client import _Entry
from connectors.bluesky.errors import _translate
from connectors.bluesky.records import _parse_time, _reason_type, _term_pattern
from connectors.bluesky.session import _process_store
from monitor.constants import ItemKind, Platform

OVERLAP_MS = 10_000
PAGE = 3


def connector(**options: object) -> BlueskyConnector:
    account = AccountRef(
        key="bluesky:school",
        platform=Platform.BLUESKY,
        handle="school.test",
        options={"overlap_seconds": OVERLAP_MS / 1000, "page_size": PAGE, **options},
    )
    return BlueskyConnector(account)


class Listing:
    """A newest-first listing with keyset cursors, like the AppView's."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str]] = []
        self.fetches = 0

    def add(self, uri: str, ts: int) -> None:
        self.rows.append((ts, uri))

    def fetch(self, cursor: str | None) -> tuple[list[_Entry], str | None, bool]:
        self.fetches += 1
        ordered = sorted(self.rows, key=lambda row: (-row[0], row[1]))
        if cursor:
            ts, uri = cursor.split("|")
            ordered = [r for r in ordered if (-r[0], r[1]) > (-int(ts), uri)]
        page = ordered[:PAGE]
        entries = [_Entry(uri, ts, {"uri": uri}) for ts, uri in page]
        next_cursor = f"{page[-1][0]}|{page[-1][1]}" if page else None
        return entries, next_cursor, len(page) == PAGE


def drain(
    conn: BlueskyConnector, listing: Listing, mark: dict[str, Any]
) -> tuple[list[str], dict[str, Any]]:
    delivered: list[str] = []
    while True:
        before = listing.fetches
        walk = conn._walk(mark, listing.fetch)
        assert listing.fetches - before <= conn.max_pages
        delivered += [entry.uri for entry in walk.new]
        mark = walk.mark
        if not walk.more:
            return delivered, mark


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, OVERLAP_MS // 2), st.booleans()),
        min_size=1,
        max_size=40,
    ),
    st.integers(1, 3),
)
def test_walk_never_skips_or_repeats(steps: list[tuple[int, int, bool]], max_pages: int) -> None:
    """Posts arrive (some indexed late, up to half the overlap); polls come at random."""
    conn = connector(max_pages=max_pages)
    listing = Listing()
    clock = 1_000_000
    mark: dict[str, Any] = {"floor": 0}
    delivered: list[str] = []
    for n, (advance, lateness, poll) in enumerate(steps):
        clock += advance * 1000
        listing.add(f"at://did:plc:x/app.bsky.feed.post/{n}", clock - lateness)
        if poll:
            walk = conn._walk(mark, listing.fetch)
            delivered += [entry.uri for entry in walk.new]
            mark = walk.mark
    for _ in range(2):  # finish a backlog, then pick up what arrived meanwhile
        rest, mark = drain(conn, listing, mark)
        delivered += rest
    assert sorted(delivered) == sorted(uri for _, uri in listing.rows)
    assert len(delivered) == len(set(delivered))
    before = listing.fetches
    assert drain(conn, listing, mark)[0] == []
    # A quiet poll reads one page, plus one for each full page inside the overlap window.
    top = max(ts for ts, _ in listing.rows)
    in_window = sum(1 for ts, _ in listing.rows if ts >= top - OVERLAP_MS)
    assert listing.fetches - before <= 1 + in_window // PAGE
    if in_window < PAGE:
        assert listing.fetches - before == 1


def test_walk_stops_at_the_backfill_floor_and_skips_undeliverable_rows() -> None:
    conn = connector()
    listing = Listing()
    listing.add("old", 100)
    listing.add("repost", 600)
    listing.add("new", 700)
    original = listing.fetch

    def fetch(cursor: str | None) -> tuple[list[_Entry], str | None, bool]:
        entries, nxt, full = original(cursor)
        return [e if e.uri != "repost" else _Entry(e.uri, e.ts) for e in entries], nxt, full

    walk = conn._walk({"floor": 500}, fetch)
    assert [e.uri for e in walk.new] == ["new"]
    assert walk.mark["top"] == 700 and not walk.more


def test_walk_of_an_empty_listing() -> None:
    walk = connector()._walk({}, Listing().fetch)
    assert walk.new == [] and walk.mark == {"top": None, "seen": {}} and not walk.more


def test_unreadable_cursor_starts_afresh() -> None:
    conn = connector()
    assert conn._load("garbage") == {}
    assert conn._load("bsky1:[1,2]") == {}
    assert conn._load(conn._dump({"a": 1})) == {"a": 1}


def test_replies_are_told_apart_by_uri_and_index_time() -> None:
    conn = connector()
    first = [{"uri": "a", "indexedAt": "2025-01-01T00:00:00Z"}]
    new, mark = conn._unseen({}, first)
    assert [v["uri"] for v in new] == ["a"]
    later = [
        *first,
        {"uri": "b", "indexedAt": "2025-01-01T00:00:05Z"},
        {"uri": "c", "indexedAt": "2024-12-31T00:00:00Z"},  # long before: seen and pruned
    ]
    new, mark = conn._unseen(mark, later)
    assert [v["uri"] for v in new] == ["b"]
    new, _ = conn._unseen(mark, later)
    assert new == []


@pytest.mark.parametrize(
    ("term", "text", "found"),
    [
        ("Oakwood Academy", "so proud of OAKWOOD academy today", True),
        ("Oakwood Academy", "oakwood\n academy rocks", True),
        ("Oakwood", "Oakwoodshire fair", False),
        ("Oakwood", "the #oakwood choir", True),
        ("St Mary's", "st mary's fete", True),
        ("St Mary's", "st marys fete", False),
        ("Oakwood", "oak wood", False),
    ],
)
def test_terms_match_whole_words_in_any_case(term: str, text: str, found: bool) -> None:
    assert bool(_term_pattern(term).search(text)) is found


def test_times_are_aware_utc() -> None:
    assert _parse_time("2025-03-01T10:00:00.123456789Z") == datetime(
        2025, 3, 1, 10, 0, 0, 123456, tzinfo=UTC
    )
    assert _parse_time("2025-03-01T11:00:00+01:00") == datetime(2025, 3, 1, 10, tzinfo=UTC)
    assert _parse_time("2025-03-01T10:00:00").tzinfo is UTC
    assert _parse_time("nonsense", fallback="2025-03-01T10:00:00Z").year == 2025


def _response(status: int, error: str, message: str = "", **headers: str) -> Response:
    return Response(
        success=False,
        status_code=status,
        content=XrpcError(error=error, message=message),
        headers=headers,
    )


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (RateLimitExceededError(_response(429, "RateLimitExceeded", **{"retry-after": "12"})),
         RateLimited),
        (InvokeTimeoutError(), TransientError),
        (NetworkError(_response(502, "UpstreamFailure")), TransientError),
        (httpx.RemoteProtocolError("Server disconnected"), TransientError),
        (RequestException(_response(503, "Unavailable")), TransientError),
        (UnauthorizedError(_response(401, "AuthenticationRequired")), AuthError),
        (BadRequestError(_response(400, "ExpiredToken", "Token has been revoked")), AuthError),
        (BadRequestError(_response(400, "NotFound", "Post not found")), Gone),
        (BadRequestError(_response(400, "InvalidRequest", "Profile not found")), Gone),
        (BadRequestError(_response(400, "InvalidRequest", "Bad cursor")), ConnectorError),
    ],
)  # fmt: skip
def test_library_errors_become_connector_errors(exc: Exception, expected: type) -> None:
    error = _translate(exc)
    assert type(error) is expected


def test_rate_limit_wait_comes_from_the_headers() -> None:
    error = _translate(RateLimitExceededError(_response(429, "x", **{"retry-after": "12"})))
    assert isinstance(error, RateLimited) and error.retry_after == 12
    error = _translate(RateLimitExceededError(_response(429, "x")))
    assert isinstance(error, RateLimited) and error.retry_after == 60


def test_report_reasons_map_to_bluesky_reason_types() -> None:
    assert _reason_type("Abusive reply to staff").endswith("#reasonRude")
    assert _reason_type("threat of violence").endswith("#reasonViolation")
    assert _reason_type("spam link").endswith("#reasonSpam")
    assert _reason_type("shares a pupil's address").endswith("#reasonOther")


def test_items_from_views() -> None:
    conn = connector()
    conn.did = "did:plc:school"
    view = {
        "uri": "at://did:plc:parent/app.bsky.feed.post/3kabc",
        "cid": "bafy",
        "author": {"did": "did:plc:parent", "handle": "handle.invalid"},
        "record": {
            "text": "hello",
            "createdAt": "2025-01-02T03:04:05Z",
            "reply": {"root": {"uri": "at://r"}, "parent": {"uri": "at://p"}},
        },
        "indexedAt": "2025-01-02T03:04:06Z",
        "likeCount": 3,
    }
    item = conn._item(view, ItemKind.REPLY)
    assert item.url == "https://bsky.app/profile/did:plc:parent/post/3kabc"
    assert item.created_at == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert (item.parent_id, item.root_id) == ("at://p", "at://r")
    assert item.engagement == {"likes": 3, "reposts": 0, "replies": 0, "quotes": 0}
    assert not item.is_own
    assert conn._kind_of(view) is ItemKind.REPLY


def test_capabilities_and_credentials() -> None:
    conn = connector()
    assert not conn.authenticated
    assert Capability.HIDE in BlueskyConnector.CAPABILITIES
    assert Capability.STREAM not in BlueskyConnector.CAPABILITIES
    assert frozenset() == BlueskyConnector.REQUIRED_CREDENTIALS
    conn.granted = BlueskyConnector.PUBLIC_CAPABILITIES
    with pytest.raises(NotSupported):
        conn.require(Capability.HIDE)


def test_sessions_are_shared_per_credentials_and_never_printed() -> None:
    one = _process_store("https://pds.example", "School.test", "pw-1")
    assert _process_store("https://pds.example", "school.test", "pw-1") is one
    assert _process_store("https://pds.example", "school.test", "pw-2") is not one
    store = MemorySessionStore("handle:::did:::secret-access:::secret-refresh:::url")
    assert "secret" not in repr(store)
