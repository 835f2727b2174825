"""Issue 13: one pending or done platform action per case and kind; a second request says so."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from monitor.actions import ActionUnderWay, Actor, request_action
from monitor.cli import app
from monitor.config import load_config
from monitor.constants import ActionKind, ActionStatus
from monitor.directory import load_directory
from monitor.jobs.buttons import button_handler
from monitor.notify.buttons import ButtonClick
from monitor.storage import tables as t
from monitor.storage.db import transaction
from tests.conftest import EXAMPLE_CONFIG
from tests.jobs.test_cli_cases import seed_case

CERYS_SLACK = "U01CERYSJN"
DAN_SLACK = "U01DANMRPH"


def _ask(
    sessions: sessionmaker[Session], case_id: int, kind: ActionKind, staff: str, now: datetime
) -> t.ActionRequest:
    config = load_config(EXAMPLE_CONFIG, environ={}).config
    with transaction(sessions) as session:
        directory = load_directory(session, config.routing, now=now)
        person = directory.person(staff)
        assert person is not None
        case = session.get(t.Case, case_id)
        assert case is not None
        try:
            return request_action(
                session, case, kind, actor=Actor.of(person, directory), now=now, directory=directory
            )
        except ActionUnderWay as exc:  # as the CLI and Slack do: the attempt is audited
            under_way = exc
    raise under_way


def _requests(sessions: sessionmaker[Session], kind: ActionKind) -> list[t.ActionRequest]:
    with sessions() as session:
        return list(
            session.scalars(select(t.ActionRequest).where(t.ActionRequest.kind == kind.value))
        )


def _set_status(sessions: sessionmaker[Session], request_id: int, status: ActionStatus) -> None:
    with transaction(sessions) as session:
        session.execute(
            update(t.ActionRequest)
            .where(t.ActionRequest.id == request_id)
            .values(status=status.value, result={"detail": "cannot hide: reported and blocked"})
        )


def test_a_second_hide_says_what_is_under_way_and_files_nothing(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    case_id = seed_case(sessions, now, restricted=False)
    first = _ask(sessions, case_id, ActionKind.HIDE, "cjones", now)
    with pytest.raises(ActionUnderWay) as caught:
        _ask(sessions, case_id, ActionKind.HIDE, "dmurphy", now + timedelta(minutes=2))
    assert caught.value.request_id == first.id
    assert "hide is already queued for the worker" in str(caught.value)
    assert f"request {first.id}, asked by Cerys Jones" in str(caught.value)
    assert [r.id for r in _requests(sessions, ActionKind.HIDE)] == [first.id]
    _set_status(sessions, first.id, ActionStatus.DONE)
    with pytest.raises(ActionUnderWay, match=r"already done \(cannot hide: reported and blocked\)"):
        _ask(sessions, case_id, ActionKind.HIDE, "cjones", now + timedelta(minutes=5))
    assert len(_requests(sessions, ActionKind.HIDE)) == 1
    with sessions() as session:
        logged = session.scalars(
            select(t.AuditEvent.action).where(t.AuditEvent.case_id == case_id)
        ).all()
    assert logged.count("action.already_under_way") == 2


def test_other_kinds_a_failure_or_an_unhide_let_a_new_request_through(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    case_id = seed_case(sessions, now, restricted=False)
    hide = _ask(sessions, case_id, ActionKind.HIDE, "cjones", now)
    _ask(sessions, case_id, ActionKind.BLOCK, "cjones", now)  # another kind: its own request
    _set_status(sessions, hide.id, ActionStatus.FAILED)
    retry = _ask(sessions, case_id, ActionKind.HIDE, "cjones", now + timedelta(minutes=1))
    _set_status(sessions, retry.id, ActionStatus.DONE)
    _ask(sessions, case_id, ActionKind.UNHIDE, "cjones", now + timedelta(minutes=2))
    with pytest.raises(ActionUnderWay, match="unhide is already queued"):
        _ask(sessions, case_id, ActionKind.UNHIDE, "dmurphy", now + timedelta(minutes=3))
    again = _ask(sessions, case_id, ActionKind.HIDE, "dmurphy", now + timedelta(minutes=4))
    assert again.id not in (hide.id, retry.id)
    assert len(_requests(sessions, ActionKind.HIDE)) == 3


def test_the_cli_says_the_hide_is_already_queued(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime
) -> None:
    case_id = seed_case(sessions, now, restricted=False)
    runner = CliRunner()
    first = runner.invoke(app, ["case", str(case_id), "--do", "hide", "--as", "cjones"])
    assert first.exit_code == 0 and "queued for the worker" in first.output
    second = runner.invoke(app, ["case", str(case_id), "--do", "hide", "--as", "dmurphy"])
    assert second.exit_code == 0, second.output
    assert "Nothing more to do" in second.output
    assert "hide is already queued for the worker" in second.output
    assert "asked by Cerys Jones" in second.output
    assert len(_requests(sessions, ActionKind.HIDE)) == 1


def test_two_people_clicking_hide_in_slack_file_one_request(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    case_id = seed_case(sessions, now, restricted=False)
    config = load_config(EXAMPLE_CONFIG, environ={}).config
    handle = button_handler(
        sessions, lambda session, at: load_directory(session, config.routing, now=at), lambda: now
    )
    assert handle(ButtonClick(CERYS_SLACK, "hide", case_id, "C0ALERTS", "1.0")) == (
        "Hide requested by Cerys Jones."
    )
    answer = handle(ButtonClick(DAN_SLACK, "hide", case_id, "C0ALERTS", "1.0"))
    assert answer.startswith("Nothing more to do: hide is already queued for the worker")
    assert "asked by Cerys Jones" in answer
    assert len(_requests(sessions, ActionKind.HIDE)) == 1
