"""R11, R12: how a case is described where its content is not shown (pure).

A shared channel (the school's Slack channel, a shared mailbox) and anyone who may not see
the case's content (``visibility.may_see_content``) are told in words what was exposed, "a
phone number and a home address", never the number or the address themselves.
"""

from __future__ import annotations

from collections.abc import Iterable

from monitor.constants import Category

# The personal-data rules (monitor.classify.personal_data) in words, in the order they are said.
PERSONAL_DATA_WORDS: dict[str, str] = {
    "PD-PUPIL-NAME": "a pupil's full name",
    "PD-PHONE": "a phone number",
    "PD-EMAIL": "an email address",
    "PD-ADDRESS": "a home address",
    "PD-POSTCODE": "a postcode",
}
UNNAMED = "personal details"  # no rule says which (a school's extra term, say)
WHO_SEES_PERSONAL_DATA = "moderators and the DSL"


def describe_personal_data(rule_ids: Iterable[str]) -> str:
    """What a text exposed, in words: ``"a phone number and a home address"``."""
    fired = frozenset(rule_ids)
    words = [said for rule, said in PERSONAL_DATA_WORDS.items() if rule in fired]
    if not words:
        return UNNAMED
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


# The title a shared channel sees instead of the category and severity, by case category.
WITHHELD_TITLES: dict[Category, str] = {
    Category.PERSONAL_DATA: "Personal data exposed",
    Category.MEDIA_ENQUIRY: "Media enquiry",
}


def withheld_note(
    category: Category, rule_ids: Iterable[str], *, holder: str | None = None
) -> str | None:
    """The words shown instead of a case's content in a shared channel; None: not described.

    A media enquiry (R11): that one arrived and who holds it (``holder``, a name).
    """
    if category is Category.MEDIA_ENQUIRY:
        return f"A media enquiry has arrived. {holder or 'Nobody yet'} holds it."
    if category is not Category.PERSONAL_DATA:
        return None
    return (
        f"Personal data exposed: {describe_personal_data(rule_ids)}. "
        f"Shown in full only to {WHO_SEES_PERSONAL_DATA}."
    )
