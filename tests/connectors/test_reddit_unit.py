"""Pure parts of the Reddit connector: visibility rules, waits, ids, cursors (no network)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from connectors.base import AccountRef, Capability, NotSupported, Visibility
from connectors.reddit import RedditConnector
from connectors.reddit.convert import DEFAULT_RETRY_AFTER, _retry_after, _split, _wait_in
from monitor.constants import Platform

VISIBILITY_CASES: list[tuple[str, dict[str, Any], Visibility]] = [
    ("t1", {"author": "a", "body": "hi"}, Visibility.VISIBLE),
    ("t1", {"author": "[deleted]", "body": "[deleted]"}, Visibility.DELETED),
    ("t1", {"author": "[deleted]", "body": "[removed]"}, Visibility.REMOVED),
    ("t1", {"author": "a", "body": "hi", "removed": True}, Visibility.REMOVED),
    ("t1", {"author": "a", "body": "hi", "spam": True}, Visibility.REMOVED),
    ("t1", {"author": "a", "body": "hi", "banned_by": "mod"}, Visibility.REMOVED),
    ("t1", {"author": "a", "body": "hi", "banned_by": True}, Visibility.REMOVED),
    (
        "t1",
        {"author": "a", "body": "hi", "banned_by": "mod", "approved_by": "mod"},
        Visibility.VISIBLE,
    ),
    ("t3", {"author": "a", "selftext": "", "removed_by_category": None}, Visibility.VISIBLE),
    ("t3", {"author": "[deleted]", "selftext": "[deleted]"}, Visibility.DELETED),
    ("t3", {"author": "a", "selftext": "x", "removed_by_category": "deleted"}, Visibility.DELETED),
    ("t3", {"author": "a", "selftext": "x", "removed_by_category": "author"}, Visibility.DELETED),
    ("t3", {"author": "a", "selftext": "[removed]"}, Visibility.REMOVED),
    ("t3", {"author": "a", "selftext": "", "removed_by_category": "moderator"}, Visibility.REMOVED),
    ("t3", {"author": "a", "selftext": "", "removed_by_category": "reddit"}, Visibility.REMOVED),
    (
        "t3",
        {"author": "a", "selftext": "", "removed_by_category": "anti_evil_ops"},
        Visibility.REMOVED,
    ),
    (
        "t3",
        {"author": "a", "selftext": "", "removed_by_category": "automod_filtered"},
        Visibility.REMOVED,
    ),
]


@pytest.mark.parametrize(("kind", "data", "expected"), VISIBILITY_CASES)
def test_visibility(kind: str, data: dict[str, Any], expected: Visibility) -> None:
    """What reddit's markers mean for removal verification."""
    assert RedditConnector._visibility(kind, data) is expected


@pytest.mark.parametrize(
    ("message", "seconds"),
    [
        ("RATELIMIT: 'you are doing that too much. try again in 5 minutes.'", 300.0),
        ("try again in 40 seconds", 40.0),
        ("try again in 1 hour", 3600.0),
        ("slow down", 60.0),
    ],
)
def test_wait_in_reddit_ratelimit_messages(message: str, seconds: float) -> None:
    """The wait reddit names in a RATELIMIT error becomes retry_after."""
    assert _wait_in(message) == seconds


@pytest.mark.parametrize(
    ("platform_id", "expected"),
    [("t1_abc", ("t1", "abc")), ("t3_x1", ("t3", "x1")), ("x1", ("t3", "x1"))],
)
def test_split_fullnames(platform_id: str, expected: tuple[str, str]) -> None:
    """Fullnames split into kind and id; a bare id is a submission."""
    assert _split(platform_id) == expected


def connector(**options: Any) -> RedditConnector:
    return RedditConnector(
        AccountRef(
            key="k",
            platform=Platform.REDDIT,
            handle="School",
            options=options,
            credentials={"client_id": "c", "client_secret": "s", "password": "p"},
        )
    )


def test_options_are_bounded() -> None:
    """Page size is clamped to reddit's 1..100 and at least one page is read."""
    c = connector(page_limit=500, max_pages=0)
    assert (c.page_limit, c.max_pages) == (100, 1)
    assert connector(page_limit=0).page_limit == 1


def test_unreadable_cursor_starts_over() -> None:
    """A corrupt stored cursor is treated as none rather than crashing the poll."""
    c = connector()
    assert c._page("not json") == {}
    assert c._page('["a list"]') == {}
    assert c._page(None) == {}


def test_capabilities_before_connect_and_hide_unsupported() -> None:
    """Reddit cannot hide; the class declares no HIDE/MUTE."""
    c = connector()
    assert Capability.HIDE not in c.CAPABILITIES and Capability.MUTE not in c.CAPABILITIES
    with pytest.raises(NotSupported):
        c.require(Capability.HIDE)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "7", "x-ratelimit-reset": "420"}, 7.0),
        ({"x-ratelimit-reset": "42"}, 42.0),  # reddit's own 429 names only the window's reset
        ({"Retry-After": "soon", "x-ratelimit-reset": "42"}, 42.0),
        ({}, DEFAULT_RETRY_AFTER),
    ],
)
def test_retry_after_comes_from_the_429_headers(headers: dict[str, str], seconds: float) -> None:
    response = requests.Response()
    response.headers.update(headers)
    assert _retry_after(response) == seconds
