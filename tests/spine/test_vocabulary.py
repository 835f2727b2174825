"""The typed vocabulary: alert kinds and poll error kinds are enums, written as before."""

from __future__ import annotations

from monitor import outbox
from monitor.constants import AlertKind, PollErrorKind
from monitor.jobs import poll
from monitor.notify.case_view import ESCALATION_KINDS, KIND_NOTES
from monitor.rules import delivery, jobs


def test_alert_kinds_keep_their_stored_text() -> None:
    # stored alerts keep their kinds: an enum member is the text it replaced
    stored: str = "case_opened"  # as read back from the alerts table
    assert AlertKind.CASE_OPENED == stored == outbox.CASE_OPENED
    assert AlertKind.STATE.about("closed") == "state:closed" == f"{outbox.STATE_CHANGE}closed"
    assert AlertKind.ESCALATED.about(12) == "escalated:12"
    assert AlertKind.CASE_UPDATED.about(3) == "case_updated:3"
    assert (delivery.UNDELIVERED_NOTICE, delivery.DSL_UNREACHED) == ("undelivered", "dsl_unreached")
    assert (jobs.JOB_FAILING, jobs.JOB_RECOVERED) == ("job_failing", "job_recovered")
    assert "state:closed".startswith(delivery.IN_PLACE_KINDS)
    assert "reassessed".startswith(delivery.IN_PLACE_KINDS)
    assert not "case_opened".startswith(delivery.IN_PLACE_KINDS)


def test_a_stored_kind_reads_back_as_its_member() -> None:
    assert AlertKind.of("escalated:12") is AlertKind.ESCALATED
    assert AlertKind.of("state:closed") is AlertKind.STATE
    assert AlertKind.of("leaver_warning") is AlertKind.LEAVER_WARNING
    # every note and escalation kind the Slack thread knows is a kind
    assert {AlertKind.of(k) for k in (*KIND_NOTES, *ESCALATION_KINDS)} <= set(AlertKind)


def test_poll_error_kinds_keep_their_stored_text() -> None:
    assert [k.value for k in PollErrorKind] == [
        "rate_limited",
        "auth",
        "transient",
        "refused",
        "crash",
    ]
    assert poll.AUTH is PollErrorKind.AUTH
    assert {"transient", "refused", "crash"} == poll.BACKOFF_KINDS
    assert "transient" in poll.BACKOFF_KINDS  # as read back from account_health


def test_a_case_reads_its_text_columns_as_enums() -> None:
    from monitor.constants import CaseState, Category, Severity
    from monitor.storage import tables as t

    case = t.Case(state="escalated", category="safeguarding", severity="high")
    assert case.case_state is CaseState.ESCALATED
    assert case.case_category is Category.SAFEGUARDING
    assert case.case_severity is Severity.HIGH
