"""Block Kit for a case: layout, buttons, restriction, and Slack's limits under hostile input."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.notify.messages import (
    BUTTON_ACTIONS,
    NO_DSL_NOTICE,
    CaseMessage,
    blocks_for,
    fallback_text,
)
from tests.servers.slack_server import BlockErrors

SENTINEL = "Zq7SECRETq7Z"


def case(**changes: Any) -> CaseMessage:
    """A typical abusive-reply case; ``changes`` override fields."""
    base = CaseMessage(
        case_id=42,
        school="St Mary's C of E Primary",
        account="@st_marys_school",
        platform="bluesky",
        author_handle="@angry_parent.bsky.social",
        text="This school is a disgrace",
        url="https://bsky.app/profile/angry/post/3k",
        category="abusive",
        severity="high",
        state="new",
        scores={"toxicity": 0.91, "insult": 0.77, "threat": 0.05},
        rules=("abuse.insult", "abuse.high_toxicity"),
        due_at_text="Tue 24 Nov 09:30",
        history=("09:30 Alert posted to #comms", "09:41 Dan Murphy acknowledged"),
        buttons=("hide", "acknowledge", "escalate", "not_abusive"),
    )
    return replace(base, **changes)


def strings(value: Any) -> list[str]:
    """Every string inside a JSON-like value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


def block_errors(blocks: list[dict[str, Any]]) -> list[str]:
    checker = BlockErrors()
    checker.blocks(blocks)
    return checker.errors


def test_layout_of_a_full_case() -> None:
    blocks = blocks_for(case())
    assert [b["type"] for b in blocks] == [
        "header",
        "section",  # fields
        "section",  # quoted text
        "section",  # scores
        "section",  # rules
        "section",  # link
        "context",  # history
        "actions",
    ]
    assert blocks[0]["text"] == {"type": "plain_text", "text": "HIGH · Abusive · Case 42"}
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert fields == [
        "*School*\nSt Mary's C of E Primary",
        "*Account*\n`@st_marys_school`",
        "*Platform*\nBluesky",
        "*State*\nNew",
        "*Owner*\nNobody yet",
        "*Author*\n`@angry_parent.bsky.social`",
        "*Due*\nTue 24 Nov 09:30",
    ]
    assert blocks[2]["text"] == {"type": "plain_text", "text": "“This school is a disgrace”"}
    assert blocks[3]["text"]["text"] == "*Scores*  Toxicity 0.91 · Insult 0.77 · Threat 0.05"
    assert blocks[4]["text"]["text"] == "*Rules fired*  `abuse.insult`, `abuse.high_toxicity`"
    assert blocks[5]["text"]["text"] == "<https://bsky.app/profile/angry/post/3k|Open on Bluesky>"
    assert blocks[6]["elements"][0]["text"] == (
        "09:30 Alert posted to #comms\n09:41 Dan Murphy acknowledged"
    )
    assert all(b["text"].get("verbatim") for b in blocks[3:6])
    assert block_errors(blocks) == []


def test_buttons_carry_the_case_id_and_action() -> None:
    actions = blocks_for(case())[-1]["elements"]
    assert [(a["action_id"], a["value"]) for a in actions] == [
        ("case:hide", "42"),
        ("case:acknowledge", "42"),
        ("case:escalate", "42"),
        ("case:not_abusive", "42"),
    ]
    hide = actions[0]
    assert hide["style"] == "danger" and hide["confirm"]["confirm"]["text"] == "Hide reply"


def test_no_buttons_no_actions_block() -> None:
    assert blocks_for(case(buttons=()))[-1]["type"] == "context"


@pytest.mark.parametrize("buttons", [("delete",), ("hide", "hide")])
def test_invalid_buttons_are_refused(buttons: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        case(buttons=buttons)


def test_restricted_case_shows_no_content() -> None:
    secret = case(
        category=f"safeguarding_{SENTINEL}",
        text=f"{SENTINEL} self-harm disclosure",
        author_handle=f"@{SENTINEL}",
        url=f"https://bsky.app/{SENTINEL}",
        scores={SENTINEL: 0.99},
        rules=(f"safeguarding.{SENTINEL}",),
        history=(f"{SENTINEL} seen by Amy",),
        due_at_text=SENTINEL,
        restricted=True,
        buttons=("acknowledge",),
    )
    blocks = blocks_for(secret)
    dumped = json.dumps(blocks) + fallback_text(secret)
    assert SENTINEL not in dumped
    assert blocks[0]["text"]["text"] == "Case 42 · Escalated to the DSL"
    assert "Escalated to the DSL" in fallback_text(secret)
    assert [b["type"] for b in blocks] == ["header", "section", "section", "actions"]
    assert block_errors(blocks) == []


def test_a_notice_comes_first_made_safe_and_never_in_a_restricted_message() -> None:
    notice = NO_DSL_NOTICE.format(school="<!channel> *St Mary's*")
    blocks = blocks_for(case(notice=notice))
    assert [b["type"] for b in blocks][:3] == ["header", "section", "section"]
    assert blocks[1]["text"]["text"].startswith("*No DSL or deputy DSL is in post for ")
    assert "<!channel>" not in json.dumps(blocks) and block_errors(blocks) == []
    assert fallback_text(case(notice=notice)).startswith("No DSL or deputy DSL is in post")
    hidden = case(notice=f"{SENTINEL} notice", restricted=True)
    assert SENTINEL not in json.dumps(blocks_for(hidden)) + fallback_text(hidden)


def test_fallback_text_is_short_and_safe() -> None:
    text = fallback_text(case(text="<!channel> *you* all " + "x" * 5000))
    assert text.startswith("[HIGH] Abusive on @stˍmarysˍschool (Bluesky) by @angryˍparent")
    assert "<" not in text and "*" not in text
    assert len(text) <= 600 and text.endswith("…")


def test_long_history_keeps_the_newest_entries() -> None:
    history = tuple(f"{n:03d} " + "h" * 400 for n in range(30))
    element = blocks_for(case(history=history))[-2]["elements"][0]["text"]
    lines = element.split("\n")
    assert lines[0].endswith("earlier)")
    assert lines[-1].startswith("029 ")
    assert len(element) <= 3000


def test_non_web_url_is_not_linked() -> None:
    blocks = blocks_for(case(url="javascript:alert(document.cookie)"))
    assert "javascript" not in json.dumps(blocks)


HOSTILE = st.lists(
    st.one_of(
        st.sampled_from(
            ["<!channel>", "<@U1>", "&", "<", ">", "*", "_", "`", "\u202e", "@here", "\n"]
        ),
        st.text(max_size=30),
        st.text(min_size=1, max_size=4).map(lambda chunk: chunk * 1000),  # huge text
    ),
    max_size=8,
).map("".join)


@settings(max_examples=60, deadline=None)
@given(
    text=HOSTILE,
    school=HOSTILE,
    author=HOSTILE,
    account=HOSTILE,
    url=HOSTILE,
    state=HOSTILE,
    due=st.one_of(st.none(), HOSTILE),
    scores=st.dictionaries(HOSTILE, st.floats(0, 1), max_size=12),
    rules=st.lists(HOSTILE, max_size=15).map(tuple),
    history=st.lists(HOSTILE, max_size=15).map(tuple),
    restricted=st.booleans(),
    buttons=st.lists(st.sampled_from(BUTTON_ACTIONS), unique=True).map(tuple),
)
def test_any_case_gives_valid_blocks_without_live_markup(
    text: str,
    school: str,
    author: str,
    account: str,
    url: str,
    state: str,
    due: str | None,
    scores: dict[str, float],
    rules: tuple[str, ...],
    history: tuple[str, ...],
    restricted: bool,
    buttons: tuple[str, ...],
) -> None:
    message = case(
        text=text,
        school=school,
        author_handle=author,
        account=account,
        url=url,
        state=state,
        due_at_text=due,
        scores=scores,
        rules=rules,
        history=history,
        restricted=restricted,
        buttons=buttons,
    )
    blocks = blocks_for(message)
    assert block_errors(blocks) == []
    link_sections = [
        b
        for b in blocks
        if b["type"] == "section" and b.get("text", {}).get("text", "").startswith("<http")
    ]
    assert len(link_sections) <= 1
    for value in [*strings([b for b in blocks if b not in link_sections]), fallback_text(message)]:
        assert "<" not in value and ">" not in value
        assert "@here" not in value and "\u202e" not in value
