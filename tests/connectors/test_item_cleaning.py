"""The connector edge cleans what no database can store: NUL and lone surrogates."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from connectors.base import RAW_ORIGINAL_KEY, Author, Item, Page, clean_raw, clean_text
from monitor.constants import ItemKind, Platform

R = "\ufffd"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("plain text", "plain text"),
        ("nul\x00inside", f"nul{R}inside"),
        ("lone high \ud800 here", f"lone high {R} here"),
        ("lone low \udfff here", f"lone low {R} here"),
        ("\ud83d\ude00 a pair as two code points", "\U0001f600 a pair as two code points"),
        ("reversed \ude00\ud83d", f"reversed {R}{R}"),
        ("\x00\x00", f"{R}{R}"),
        # nothing else is altered: other controls, invisible and astral characters stay
        ("tab\tbell\x07zero\u200bwidth\U0001f600", "tab\tbell\x07zero\u200bwidth\U0001f600"),
        ("", ""),
    ],
)
def test_clean_text(given: str, expected: str) -> None:
    cleaned = clean_text(given)
    assert cleaned == expected
    cleaned.encode("utf-8")  # storable everywhere


def test_an_item_is_cleaned_and_its_raw_payload_kept_losslessly() -> None:
    raw = {"body": "hi\x00there", "user": {"name": "x\ud800"}, "n": 3, "tags": ["\udc00"]}
    item = Item(
        platform=Platform.MASTODON,
        platform_id="id\x00",
        kind=ItemKind.REPLY,
        url="https://example.test/\ud800",
        author=Author(id="a\x00", handle="h\ud800", display_name="Name \udbff\x00"),
        text="text \ud800 and \x00",
        created_at=datetime(2026, 11, 23, tzinfo=UTC),
        parent_id="p\x00",
        root_id="r\ud800",
        raw=raw,
    )
    assert item.text == f"text {R} and {R}"
    assert item.author.display_name == f"Name {R}{R}"
    assert (item.author.id, item.author.handle) == (f"a{R}", f"h{R}")
    assert (item.platform_id, item.parent_id, item.root_id) == (f"id{R}", f"p{R}", f"r{R}")
    assert item.url == f"https://example.test/{R}"
    assert item.raw["body"] == f"hi{R}there" and item.raw["user"] == {"name": f"x{R}"}
    assert item.raw["n"] == 3 and item.raw["tags"] == [R]
    original = item.raw[RAW_ORIGINAL_KEY]
    assert original.isascii() and json.loads(original) == raw  # nothing lost
    json.dumps(item.raw, ensure_ascii=False).encode("utf-8")


def test_a_clean_raw_payload_is_left_as_it_is() -> None:
    raw = {"body": "hello", "nested": {"list": [1, "two"]}}
    assert clean_raw(raw) == raw
    assert RAW_ORIGINAL_KEY not in clean_raw(raw)


def test_a_page_cursor_is_storable_too() -> None:
    assert Page((), "after:\x00\ud800").cursor == f"after:{R}{R}"
    assert Page((), None).cursor is None
    assert Page((), "t1_abc").cursor == "t1_abc"
