"""Mastodon connector pieces that need no server: HTML to text, options, error translation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from mastodon.errors import (
    MastodonAPIError,
    MastodonBadGatewayError,
    MastodonError,
    MastodonInternalServerError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonReadTimeout,
    MastodonUnauthorizedError,
)

from connectors.base import (
    AccountRef,
    AuthError,
    Author,
    Capability,
    ConnectorError,
    Gone,
    Item,
    NotSupported,
    RateLimited,
    TransientError,
)
from connectors.mastodon import MastodonConnector, html_to_text
from monitor.constants import ItemKind, Platform


def ref(**options: Any) -> AccountRef:
    """An AccountRef with the given options (a loopback base URL unless overridden)."""
    merged: dict[str, Any] = {"api_base_url": "http://127.0.0.1:9"}
    merged.update(options)
    return AccountRef(
        key="m",
        platform=Platform.MASTODON,
        handle="school",
        options=merged,
        credentials={"access_token": "very-secret-token"},
    )


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>Hello &amp; welcome</p>", "Hello & welcome"),
        ("<p>Line one<br>Line two</p><p>Para two</p>", "Line one\nLine two\n\nPara two"),
        ("<p>&lt;b&gt;not bold&lt;/b&gt; &lt;!channel&gt;</p>", "<b>not bold</b> <!channel>"),
        (
            '<p>See <a href="https://example.com/abc/def"><span class="invisible">https://'
            '</span><span class="ellipsis">example.com/abc</span><span class="invisible">/def'
            "</span></a></p>",
            "See https://example.com/abc/def",
        ),
        (
            '<p><span class="h-card"><a href="https://x/@school" class="u-url mention">'
            "@<span>school</span></a></span> thanks</p>",
            "@school thanks",
        ),
        ("", ""),
        ("plain", "plain"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    """Status HTML becomes the text a reader sees, with entities decoded."""
    assert html_to_text(html) == text


def test_plain_http_is_refused_off_loopback() -> None:
    """A bearer token never crosses the network in clear text unless explicitly allowed."""
    with pytest.raises(ConnectorError, match="loopback"):
        MastodonConnector(ref(api_base_url="http://mastodon.example"))
    MastodonConnector(ref(api_base_url="http://mastodon.example", allow_http=True))
    MastodonConnector(ref(api_base_url="https://mastodon.example"))
    MastodonConnector(ref(api_base_url="http://localhost:3000"))


@pytest.mark.parametrize(
    "options",
    [
        {"api_base_url": ""},
        {"api_base_url": "ftp://x"},
        {"page_size": 0},
        {"page_size": 41},
        {"admin": "maybe"},
        {"admin_remove_action": "delete"},
        {"request_timeout": "soon"},
    ],
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    """Misconfiguration fails at construction with our error type."""
    with pytest.raises(ConnectorError):
        MastodonConnector(ref(**options))


def test_token_is_not_in_repr() -> None:
    """Neither the connector nor its account prints the token."""
    conn = MastodonConnector(ref())
    assert "very-secret-token" not in repr(conn)
    assert "very-secret-token" not in repr(conn.account)


def test_hide_is_not_supported_and_not_declared() -> None:
    """Mastodon cannot hide a reply; the capability set says so."""
    conn = MastodonConnector(ref())
    item = Item(
        platform=Platform.MASTODON,
        platform_id="1",
        kind=ItemKind.REPLY,
        url="https://x/1",
        author=Author(id="2", handle="a"),
        text="t",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert Capability.HIDE not in MastodonConnector.CAPABILITIES
    assert Capability.UNHIDE not in MastodonConnector.CAPABILITIES
    with pytest.raises(NotSupported):
        conn.hide(item)
    with pytest.raises(NotSupported):
        conn.unhide(item)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (MastodonRatelimitError("Hit rate limit."), RateLimited),
        (
            MastodonUnauthorizedError("Mastodon API returned error", 401, "Unauthorized", "x"),
            AuthError,
        ),
        (MastodonAPIError("Mastodon API returned error", 403, "Forbidden", "x"), AuthError),
        (MastodonNotFoundError("Mastodon API returned error", 404, "Not Found", "x"), Gone),
        (MastodonAPIError("Mastodon API returned error", 410, "Gone", "x"), Gone),
        (MastodonAPIError("Mastodon API returned error", 429, "Too Many", "x"), RateLimited),
        (
            MastodonInternalServerError("Mastodon API returned error", 500, "ISE", "x"),
            TransientError,
        ),
        (MastodonBadGatewayError("Mastodon API returned error", 502, "Bad", "x"), TransientError),
        (MastodonNetworkError("Could not complete request"), TransientError),
        (MastodonReadTimeout("read timed out"), TransientError),
        (MastodonAPIError("Could not parse response as JSON", "Exception was: x"), TransientError),
        (
            MastodonAPIError("Mastodon API returned error", 422, "Unprocessable", "x"),
            ConnectorError,
        ),
        (MastodonError("odd"), ConnectorError),
    ],
)
def test_library_errors_are_translated(error: MastodonError, expected: type[Exception]) -> None:
    """Every Mastodon.py error becomes exactly the expected one of ours."""
    translated = MastodonConnector(ref())._translate(error)
    assert type(translated) is expected


def test_rate_limit_without_reset_header_waits_the_whole_window() -> None:
    """No usable X-RateLimit-Reset: wait out Mastodon's 5-minute window."""
    translated = MastodonConnector(ref())._translate(MastodonRatelimitError("Hit rate limit."))
    assert isinstance(translated, RateLimited)
    assert translated.retry_after == 300.0


@pytest.mark.parametrize("cursor", ["not json", '{"v": 99}', "[1]"])
def test_foreign_cursors_are_refused(cursor: str) -> None:
    """A cursor this connector did not write is an error, not a silent restart."""
    conn = MastodonConnector(ref())
    conn._api = object()  # polls check the cursor before any request
    conn._me_id = "1"
    with pytest.raises(ConnectorError, match="cursor"):
        conn.poll_posts(cursor)


def status(status_id: int, parent: int, hours: float, account: str = "9") -> dict[str, Any]:
    """A minimal Mastodon status ``hours`` after a fixed start."""
    start = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    return {
        "id": str(status_id),
        "in_reply_to_id": str(parent),
        "in_reply_to_account_id": "1",
        "account": {"id": account, "acct": f"u{account}", "display_name": ""},
        "content": f"<p>reply {status_id}</p>",
        "created_at": datetime.fromtimestamp(start + hours * 3600, tz=UTC),
        "visibility": "public",
    }


def test_reply_cursor_keeps_only_the_window_and_stays_exact() -> None:
    """Seen replies older than the window are pruned; nothing is delivered twice or dropped."""
    conn = MastodonConnector(ref(reply_window_hours=24))
    conn._me_id = "1"
    descendants = [status(10 + n, 5, hours=n * 6) for n in range(20)]  # one every 6 h
    found, state = conn._replies_in("5", {"ancestors": [], "descendants": descendants}, {"5"}, None)
    assert [i.platform_id for i in found] == [str(10 + n) for n in range(20)]
    # Newest at 114 h: the window keeps 90 h..114 h, i.e. five replies, not twenty.
    assert sorted(state["seen"]) == [str(10 + n) for n in range(15, 20)]
    late_in_window = status(99, 5, hours=100)  # federated late, older than the newest
    again, state2 = conn._replies_in(
        "5", {"ancestors": [], "descendants": [*descendants, late_in_window]}, {"5"}, state
    )
    assert [i.platform_id for i in again] == ["99"]
    assert all(i.kind is ItemKind.REPLY and i.root_id == "5" for i in found + again)
    idle, _ = conn._replies_in(
        "5", {"ancestors": [], "descendants": [*descendants, late_in_window]}, {"5"}, state2
    )
    assert idle == []
