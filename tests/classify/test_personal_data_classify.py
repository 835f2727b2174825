"""R12: contact details and protected pupils' full names."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from monitor.classify.personal_data import ProtectedNames, find_contact_details, full_name_variants
from monitor.classify.text import normalise
from tests.classify.classify_support import PROTECTED


@pytest.mark.parametrize(
    ("text", "rule_id", "matched"),
    [
        ("ring 07700 900123 tonight", "PD-PHONE", "07700 900123"),
        ("07700900123", "PD-PHONE", "07700900123"),
        ("call +44 7700 900456", "PD-PHONE", "+44 7700 900456"),
        ("office 0121 496 0000 ext 2", "PD-PHONE", "0121 496 0000"),
        ("try 020-7946-0000", "PD-PHONE", "020-7946-0000"),
        ("ring +44 (0)20 7946 0000", "PD-PHONE", "+44 (0)20 7946 0000"),
        ("mail dave.smith1979@gmail.com now", "PD-EMAIL", "dave.smith1979@gmail.com"),
        ("J_Bloggs+school@hotmail.co.uk", "PD-EMAIL", "J_Bloggs+school@hotmail.co.uk"),
        ("near B23 6QT please", "PD-POSTCODE", "B23 6QT"),
        ("postcode ls6 2qt", "PD-POSTCODE", "ls6 2qt"),
        ("EC1A1BB", "PD-POSTCODE", "EC1A1BB"),
        ("drop it at 14 Oak Tree Road", "PD-ADDRESS", "14 Oak Tree Road"),
        ("she lives on 22b hawthorn close", "PD-ADDRESS", "22b hawthorn close"),
    ],
)
def test_contact_details_are_found(text: str, rule_id: str, matched: str) -> None:
    found = [(m.rule_id, m.matched) for m, _ in find_contact_details(text)]
    assert (rule_id, matched) in found
    for m, _ in find_contact_details(text):
        assert text[m.start : m.end] == m.matched


@pytest.mark.parametrize(
    "text",
    [
        "email office@oakfield.sch.uk or admissions2@trust.org.uk",  # shared school mailboxes
        "Year 7 came 2nd and Year 8 3rd",
        "raised £1,250 and 300 cakes",
        "SATs on 12/05/2026 at 09:00",
        "Order number 12345678901",  # not a UK number: does not start with 0
        "There's only 1 other way",
        "we won 3 nil on the A34 pitch",
        "our username is ab12cd",
    ],
)
def test_ordinary_numbers_and_school_mailboxes_are_not_personal_data(text: str) -> None:
    assert find_contact_details(text) == []


def test_address_wins_over_the_postcode_inside_it() -> None:
    found = [m.rule_id for m, _ in find_contact_details("lives at 9 Chestnut Drive")]
    assert found == ["PD-ADDRESS"]


@pytest.mark.parametrize(
    ("name", "variants"),
    [
        ("Amelia Thornton", ["Amelia Thornton"]),
        ("Harry James Lister", ["Harry James Lister", "Harry Lister"]),
        ("Amelia", []),
    ],
)
def test_full_name_variants(name: str, variants: list[str]) -> None:
    assert full_name_variants(name) == variants


@pytest.fixture
def names(tmp_path: Path) -> ProtectedNames:
    path = tmp_path / "pupils.txt"
    shutil.copy(PROTECTED, path)
    os.chmod(path, 0o600)
    return ProtectedNames(path)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Amelia Thornton was the star", ["Amelia Thornton"]),
        ("well done AMELIA THORNTON!", ["AMELIA THORNTON"]),
        ("Oliver Bennett's mum", ["Oliver Bennett's"]),
        ("Freya Hughes Patel and Jayden O’Connor", ["Freya Hughes Patel", "Jayden O’Connor"]),
        ("zoe whitfield in 10C", ["zoe whitfield"]),  # accents do not matter
        ("Harry Lister and Harry James Lister", ["Harry Lister", "Harry James Lister"]),
        ("Well done Amelia!", []),  # first names alone are fine
        ("Amelia T. and Oliver B.", []),  # so are initials
        ("Thornton Amelia", []),
        ("Amelia Thorntonby", []),
    ],
)
def test_protected_full_names(names: ProtectedNames, text: str, found: list[str]) -> None:
    hits = names.find(normalise(text))
    assert [m.matched for m, _ in hits] == found
    assert all(m.rule_id == "PD-PUPIL-NAME" for m, _ in hits)


def test_a_readable_names_file_is_warned_about_once(
    names: ProtectedNames, caplog: pytest.LogCaptureFixture
) -> None:
    os.chmod(names.path, 0o644)
    caplog.set_level(logging.WARNING, logger="monitor.classify")
    names.refresh()
    names.find(normalise("Amelia Thornton"))
    warnings = [r.getMessage() for r in caplog.records if "chmod 600" in r.getMessage()]
    assert len(warnings) == 1
    assert "Amelia" not in caplog.text  # names never reach the log


def test_a_private_names_file_is_not_warned_about(
    names: ProtectedNames, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="monitor.classify")
    names.refresh()
    assert "chmod" not in caplog.text
    assert names.count == 11  # ten names, one with a middle name


def test_the_file_is_reloaded_when_it_changes(names: ProtectedNames) -> None:
    assert names.find(normalise("Ben Carter")) == []
    names.path.write_text("Ben Carter\n", encoding="utf-8")
    assert [m.matched for m, _ in names.find(normalise("Ben Carter"))] == ["Ben Carter"]
    assert names.find(normalise("Amelia Thornton")) == []


def test_a_missing_file_is_logged_once_and_checked_again_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="monitor.classify")
    names = ProtectedNames(tmp_path / "later.txt")
    for _ in range(3):
        assert names.find(normalise("Ben Carter")) == []
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "full-name check (R12) is off" in errors[0].getMessage()
    names.path.write_text("Ben Carter\n", encoding="utf-8")
    os.chmod(names.path, 0o600)
    assert len(names.find(normalise("Ben Carter"))) == 1


def test_one_word_lines_are_reported_without_the_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "pupils.txt"
    path.write_text("# comment\nMadonna\n\nBen Carter  # joined in May\n", encoding="utf-8")
    os.chmod(path, 0o600)
    caplog.set_level(logging.WARNING, logger="monitor.classify")
    names = ProtectedNames(path)
    assert names.count == 1
    assert "line 2: one word only" in caplog.text and "Madonna" not in caplog.text
