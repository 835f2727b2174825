"""R3, R4: leavers checked together, and who hears of a leaver (table tests)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.config_models import Routing
from monitor.constants import Role
from monitor.directory import Directory, Person
from monitor.rules.leavers import leaver_audience, leavers_together_refusal

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("admins", "leavers", "refused"),
    [
        # one leaver, two stay: fine; a second leaver with the first: one would stay
        ("a b c", {"a": None}, False),
        ("a b c", {"a": None, "b": None}, True),
        ("a b c", {"b": None, "a": None}, True),  # whatever the order of scheduling
        # a successor who takes the role over: never refused (as for one leaver)
        ("a b c", {"a": "d", "b": None}, False),
        ("a b c", {"a": "d", "b": "e"}, False),
        ("a b", {"a": "d", "b": "e"}, False),
        # a successor who is leaving too does not count
        ("a b c", {"a": "b", "b": None}, True),
        # leavers of other accounts do not count
        ("a b c", {"x": None, "y": None, "a": None}, False),
        # nobody of this account is leaving
        ("a", {"x": None}, False),
        # someone already not in post does not stay
        ("a b c gone", {"a": None}, False),
        ("a b gone", {"a": None}, True),
    ],
)
def test_leavers_together(admins: str, leavers: dict[str, str | None], refused: bool) -> None:
    in_post = [k for k in admins.split() if k != "gone"] + ["d", "e", "x", "y"]
    why = leavers_together_refusal(
        account_key="oak-bsky", admins=admins.split(), in_post=in_post, leavers=leavers
    )
    assert (why is not None) is refused
    if why:
        assert why.startswith("oak-bsky would be left with")


def person(key: str, roles: set[Role], schools: set[str]) -> Person:
    return Person(key, key, f"{key}@s.uk", None, frozenset(roles), frozenset(schools))


PEOPLE = (
    person("oakhead", {Role.PRINCIPAL}, {"oak"}),
    person("oakslt", {Role.SLT}, {"oak"}),
    person("elmhead", {Role.PRINCIPAL, Role.SLT}, {"elm"}),
    person("ceo", {Role.PRINCIPAL, Role.SLT}, set()),  # trust-wide
    person("it", {Role.IT_ADMIN}, set()),
    person("oakcomms", {Role.COMMS}, {"oak"}),
)


@pytest.mark.parametrize(
    ("schools", "told"),
    [
        ({"oak"}, {"oakhead", "oakslt", "ceo"}),  # the school's leaders (the CEO serves it too)
        ({"elm"}, {"elmhead", "ceo"}),
        ({"oak", "elm"}, {"oakhead", "oakslt", "elmhead", "ceo"}),
        (set(), {"ceo"}),  # a trust-wide leaver: the trust's leaders only
    ],
)
def test_who_hears_of_a_leaver(schools: set[str], told: set[str]) -> None:
    directory = Directory(PEOPLE, Routing(), now=NOW)
    assert {p.key for p in leaver_audience(directory, schools)} == told
