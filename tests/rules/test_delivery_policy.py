"""Table tests for the undelivered-alert policy and the job-health rule (pure, time passed in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.config_models import Routing
from monitor.constants import AlertChannel, Category, Role
from monitor.directory import Directory, Person
from monitor.rules.delivery import (
    Recipient,
    backoff,
    dsl_unreached_due,
    fallback_due,
    fallback_recipients,
    reachable,
    reached_a_dsl,
)
from monitor.rules.jobs import job_failing, tell_it_now

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
S, E = AlertChannel.SLACK, AlertChannel.EMAIL
R = Role


def person(key: str, roles: set[Role], *, slack: bool = True, email: bool = True) -> Person:
    return Person(
        key,
        key.title(),
        f"{key}@s.uk" if email else None,
        f"U{key.upper()}" if slack else None,
        frozenset(roles),
        frozenset({"oak"}),
    )


DIRECTORY = Directory(
    people=(
        person("dsl", {R.DSL}),
        person("mod", {R.MODERATOR}),
        person("head", {R.PRINCIPAL}, slack=False),
        person("it", {R.IT_ADMIN}),
    ),
    routing=Routing(),
    now=NOW,
)


@pytest.mark.parametrize(
    ("attempts", "wait"),
    [
        (1, timedelta(seconds=30)),
        (2, timedelta(minutes=1)),
        (5, timedelta(minutes=8)),
        (6, timedelta(minutes=15)),  # 16 minutes, capped
        (1000, timedelta(minutes=15)),  # never more, never an overflow
    ],
)
def test_backoff_is_capped_at_15_minutes(attempts: int, wait: timedelta) -> None:
    assert backoff(attempts) == wait


@pytest.mark.parametrize(
    ("age", "fallback", "principal"),
    [
        (timedelta(minutes=9, seconds=59), False, False),
        (timedelta(minutes=10), False, True),
        (timedelta(minutes=14, seconds=59), False, True),
        (timedelta(minutes=15), True, True),
    ],
)
def test_when_the_fallbacks_are_due(age: timedelta, fallback: bool, principal: bool) -> None:
    assert fallback_due(NOW - age, NOW) is fallback
    assert dsl_unreached_due(NOW - age, NOW) is principal


@pytest.mark.parametrize(
    ("channel", "target", "kind", "categories", "expected"),
    [
        (S, "UDSL", "case_opened", None, [Recipient(E, "dsl@s.uk")]),  # a DM: by email
        (E, "DSL@s.uk", "case_opened", None, [Recipient(S, "UDSL")]),  # an email: by DM
        (E, "head@s.uk", "case_opened", None, []),  # no Slack id: no copy
        (S, "UNOBODY", "case_opened", None, []),  # not a member of staff
        # a channel post: by email to the people the route tells there
        (S, "C1", "case_opened", {Category.ABUSIVE}, [Recipient(E, "mod@s.uk")]),
        (S, "C1", "notice", None, [Recipient(E, "it@s.uk")]),  # no case: IT's channel
        (S, "UDSL", "state:acknowledged", None, []),  # in-place updates: the first shows it
        (S, "C1", "reassessed", {Category.ABUSIVE}, []),
    ],
)
def test_fallback_recipients(
    channel: AlertChannel,
    target: str,
    kind: str,
    categories: set[Category] | None,
    expected: list[Recipient],
) -> None:
    got = fallback_recipients(
        DIRECTORY,
        channel=channel,
        target=target,
        kind=kind,
        categories=frozenset(categories) if categories is not None else None,
        school_key="oak",
    )
    assert got == expected


@pytest.mark.parametrize(
    ("sent", "reached"),
    [
        (set(), False),
        ({"C1", "mod@s.uk"}, False),  # the channel and the moderator are not the DSL
        ({"UDSL"}, True),
        ({"DSL@S.UK"}, True),  # email addresses compare without case
    ],
)
def test_reached_a_dsl(sent: set[str], reached: bool) -> None:
    assert reached_a_dsl(sent, DIRECTORY, "oak") is reached


@pytest.mark.parametrize(
    ("configured", "one_each", "expected"),
    [
        ({S, E}, False, [Recipient(S, "UIT"), Recipient(E, "it@s.uk")]),
        ({S, E}, True, [Recipient(S, "UIT")]),
        ({E}, True, [Recipient(E, "it@s.uk")]),
        (set(), True, [Recipient(S, "UIT")]),  # nothing configured: it waits for a channel
    ],
)
def test_reachable_it(
    configured: set[AlertChannel], one_each: bool, expected: list[Recipient]
) -> None:
    got = reachable(
        DIRECTORY, frozenset({R.IT_ADMIN}), None, frozenset(configured), one_each=one_each
    )
    assert got == expected


@pytest.mark.parametrize(
    ("failures", "told", "failing", "tell"),
    [
        (0, False, False, False),
        (2, False, False, False),
        (3, False, True, True),
        (9, True, True, False),
    ],
)
def test_job_health_rule(failures: int, told: bool, failing: bool, tell: bool) -> None:
    assert job_failing(failures) is failing
    assert tell_it_now(failures, told) is tell
