"""R12: a personal-data case is described in words where its content may not be shown."""

from __future__ import annotations

import pytest

from monitor.classify.personal_data import (
    PD_ADDRESS,
    PD_EMAIL,
    PD_PHONE,
    PD_POSTCODE,
    PD_PUPIL_NAME,
    find_contact_details,
)
from monitor.constants import Category
from monitor.rules.redaction import PERSONAL_DATA_WORDS, describe_personal_data, withheld_note


@pytest.mark.parametrize(
    ("rule_ids", "words"),
    [
        (["PD-PHONE"], "a phone number"),
        (["PD-ADDRESS", "PD-PHONE"], "a phone number and a home address"),
        (["PD-PHONE", "PD-PHONE", "PD-ADDRESS"], "a phone number and a home address"),
        (
            ["PD-EMAIL", "PD-POSTCODE", "PD-PUPIL-NAME"],
            "a pupil's full name, an email address and a postcode",
        ),
        (["ABU-INSULT", "PD-EMAIL"], "an email address"),
        ([], "personal details"),
        (["SCHOOL-PERSONAL-DATA"], "personal details"),
    ],
)
def test_personal_data_in_words(rule_ids: list[str], words: str) -> None:
    assert describe_personal_data(rule_ids) == words


def test_every_personal_data_rule_has_words() -> None:
    rules = {PD_PHONE.id, PD_EMAIL.id, PD_POSTCODE.id, PD_ADDRESS.id, PD_PUPIL_NAME.id}
    assert set(PERSONAL_DATA_WORDS) == rules


def test_the_note_names_what_was_found_never_the_details() -> None:
    text = "ring her on 07700 900123 or go round to 14 Acacia Avenue"
    rule_ids = [match.rule_id for match, _ in find_contact_details(text)]
    note = withheld_note(Category.PERSONAL_DATA, rule_ids)
    assert note is not None
    assert "a phone number and a home address" in note
    assert "07700" not in note and "Acacia" not in note
    assert "moderators and the DSL" in note
    assert withheld_note(Category.ABUSIVE, rule_ids) is None
