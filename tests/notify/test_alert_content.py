"""What each alert says (R6, R11): the owner is shown; a DSL's notification is content-free."""

from __future__ import annotations

from monitor.notify.messages import CaseMessage, blocks_for, fallback_text


def message(**kw: object) -> CaseMessage:
    base: dict[str, object] = {
        "case_id": 12,
        "school": "Oakfield Primary",
        "account": "oakfield-bluesky",
        "platform": "bluesky",
        "author_handle": "troll.test",
        "text": "my uncle hurts me",
        "url": None,
        "category": "safeguarding",
        "severity": "critical",
        "state": "new",
    }
    return CaseMessage(**{**base, **kw})  # type: ignore[arg-type]


def test_the_owner_is_shown() -> None:
    assert "Dan Murphy" in repr(blocks_for(message(owner="Dan Murphy")))
    assert "Nobody yet" in repr(blocks_for(message()))


def test_a_private_case_notifies_without_content() -> None:
    text = fallback_text(message(private=True))
    assert "CRITICAL" in text and "Case 12" in text
    for secret in ("uncle", "troll.test", "oakfield-bluesky"):
        assert secret not in text
    # the message body still carries the content for the DSL
    assert "my uncle hurts me" in repr(blocks_for(message(private=True)))
    assert "uncle" in fallback_text(message(category="abusive"))
