"""The one cursor format every connector writes its paging cursors in: table tests."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from connectors.base import ConnectorError
from connectors.paging import CursorFormat, UnreadableCursor

PLAIN = CursorFormat("reddit")
PREFIXED = CursorFormat("Bluesky", prefix="bsky1:")
VERSIONED = CursorFormat("mastodon", version=1)


@pytest.mark.parametrize(
    ("fmt", "state", "cursor"),
    [
        # sorted keys, no spaces: the same state always gives the same string
        (PLAIN, {"b": 1, "a": [1, 2]}, '{"a":[1,2],"b":1}'),
        (PLAIN, {}, "{}"),
        (PREFIXED, {"top": 5, "seen": {"at://x": 4}}, 'bsky1:{"seen":{"at://x":4},"top":5}'),
        (VERSIONED, {"after": "109"}, '{"after":"109","v":1}'),
        (PLAIN, {"text": "café"}, '{"text":"caf\\u00e9"}'),
    ],
)
def test_dump_spells_cursors_as_earlier_releases_stored_them(
    fmt: CursorFormat, state: dict[str, Any], cursor: str
) -> None:
    assert fmt.dump(state) == cursor
    loaded = fmt.load(cursor)
    assert {k: v for k, v in loaded.items() if k != "v"} == state


@pytest.mark.parametrize(
    ("fmt", "cursor", "state"),
    [
        (PLAIN, None, {}),
        (PLAIN, "", {}),
        (PREFIXED, None, {}),
        (VERSIONED, None, {}),
        (VERSIONED, '{"v":1,"terms":{}}', {"v": 1, "terms": {}}),
        (PREFIXED, 'bsky1:{"a":1}', {"a": 1}),
    ],
)
def test_load_reads_no_cursor_as_the_start(
    fmt: CursorFormat, cursor: str | None, state: dict[str, Any]
) -> None:
    assert fmt.load(cursor) == state


@pytest.mark.parametrize(
    ("fmt", "cursor", "message"),
    [
        (PLAIN, "not json", "unreadable reddit cursor"),
        (PLAIN, '["a list"]', "unreadable reddit cursor"),
        (PLAIN, "17", "unreadable reddit cursor"),
        (PREFIXED, "garbage", "unreadable Bluesky cursor"),
        (PREFIXED, '{"a":1}', "unreadable Bluesky cursor"),  # the prefix is missing
        (PREFIXED, "bsky1:[1,2]", "unreadable Bluesky cursor"),
        (PREFIXED, "bsky1:{", "unreadable Bluesky cursor"),
        (VERSIONED, "{", "unreadable mastodon cursor"),
        (VERSIONED, '{"after":"1"}', "mastodon cursor of an unknown version"),
        (VERSIONED, '{"v":2,"after":"1"}', "mastodon cursor of an unknown version"),
    ],
)
def test_load_refuses_what_the_format_did_not_write(
    fmt: CursorFormat, cursor: str, message: str
) -> None:
    with pytest.raises(UnreadableCursor) as caught:
        fmt.load(cursor)
    assert str(caught.value) == message
    assert isinstance(caught.value, ConnectorError)  # the core's error for a broken poll


@pytest.mark.parametrize("cursor", ["garbage", "bsky1:[1,2]", '{"a":1}'])
def test_load_or_start_logs_and_starts_over(cursor: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="connectors.paging"):
        assert PREFIXED.load_or_start(cursor, "bluesky:school") == {}
    [record] = caplog.records
    assert record.getMessage() == "ignoring an unreadable Bluesky cursor for bluesky:school"


def test_load_or_start_keeps_a_readable_cursor_quietly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="connectors.paging"):
        assert PREFIXED.load_or_start(PREFIXED.dump({"top": 1}), "k") == {"top": 1}
        assert PREFIXED.load_or_start(None, "k") == {}
    assert caplog.records == []
