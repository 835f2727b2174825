"""Which state changes edit a case's Slack messages without a thread reply, as table rows."""

from __future__ import annotations

import pytest

from monitor.constants import CaseState
from monitor.rules.alerting import POLICY_ACTOR, state_change_is_quiet

S = CaseState


@pytest.mark.parametrize(
    ("before", "after", "actor", "quiet"),
    [
        # the policy closing what was already answered or judged not a concern: nothing to do
        (S.RESPONDED, S.CLOSED, POLICY_ACTOR, True),
        (S.DISMISSED, S.CLOSED, POLICY_ACTOR, True),
        # a person closing it: the thread says who did
        (S.RESPONDED, S.CLOSED, "cjones", False),
        # the policy closing a case still open (a standing problem fixed) or escalating: told
        (S.NEW, S.CLOSED, POLICY_ACTOR, False),
        (S.ACKNOWLEDGED, S.CLOSED, POLICY_ACTOR, False),
        (S.NEW, S.ESCALATED, POLICY_ACTOR, False),
        (S.RESPONDED, S.NEW, POLICY_ACTOR, False),
    ],
)
def test_which_state_changes_are_quiet(
    before: CaseState, after: CaseState, actor: str, quiet: bool
) -> None:
    assert state_change_is_quiet(before, after, actor=actor) is quiet
