"""Case and staff commands through the real CLI."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from monitor import cases
from monitor.cli import app
from monitor.config import load_config
from monitor.constants import Category, Severity
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.sync import apply_config
from tests.conftest import EXAMPLE_CONFIG

runner = CliRunner()


def seed_case(sessions: sessionmaker[Session], now: datetime, *, restricted: bool) -> int:
    with transaction(sessions) as session:
        apply_config(session, load_config(EXAMPLE_CONFIG, environ={}).config, now=now)
        account = session.scalars(
            select(t.Account).where(t.Account.key == "oakfield-bluesky")
        ).one()
        item = t.Item(
            platform="bluesky",
            platform_id="at://x/1",
            account_id=account.id,
            stream="replies",
            kind="reply",
            url="https://bsky.app/profile/x/post/1",
            author_id="did:plc:x",
            author_handle="angry.test",
            text="<!channel> [bold]secret disclosure[/bold]",
            created_at=now,
            seen_at=now,
        )
        session.add(item)
        session.flush()
        case, _ = cases.open_case(
            session,
            dedupe_key=f"item:{item.id}",
            category=Category.SAFEGUARDING if restricted else Category.ABUSIVE,
            severity=Severity.HIGH,
            title="Concern on oakfield-bluesky",
            now=now,
            item_id=item.id,
            account_id=account.id,
            school_id=account.school_id,
            restricted=restricted,
        )
        return case.id


def test_cases_list_and_restricted_show(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime
) -> None:
    case_id = seed_case(sessions, now, restricted=True)
    listed = runner.invoke(app, ["cases"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "safeguarding (restricted)" in listed.output
    assert "secret disclosure" not in listed.output
    hidden = runner.invoke(app, ["case", str(case_id)])
    assert (
        hidden.exit_code == 0
        and "secret disclosure" not in hidden.output
        and "only to the DSL" in hidden.output
    )
    as_comms = runner.invoke(app, ["case", str(case_id), "--as", "fali"])
    assert "secret disclosure" not in as_comms.output
    as_dsl = runner.invoke(app, ["case", str(case_id), "--as", "bpatel"], env={"COLUMNS": "200"})
    assert (
        as_dsl.exit_code == 0 and "[bold]secret disclosure[/bold]" in as_dsl.output
    )  # shown literally, no markup


def test_case_do_checks_roles_and_queues_platform_actions(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime
) -> None:
    case_id = seed_case(sessions, now, restricted=False)
    refused = runner.invoke(app, ["case", str(case_id), "--do", "hide", "--as", "gsmith"])
    assert refused.exit_code == 1 and "Refused" in refused.output
    queued = runner.invoke(
        app, ["case", str(case_id), "--do", "hide", "--as", "cjones", "--reason", "abusive"]
    )
    assert queued.exit_code == 0 and "queued for the worker" in queued.output
    acked = runner.invoke(app, ["case", str(case_id), "--do", "acknowledge", "--as", "cjones"])
    assert acked.exit_code == 0 and "done" in acked.output
    no_actor = runner.invoke(app, ["case", str(case_id), "--do", "hide"])
    assert no_actor.exit_code == 2
    with sessions() as session:
        case = session.get(t.Case, case_id)
        assert case is not None and case.state == "acknowledged"
        assert (
            session.scalars(
                select(t.ActionRequest.status).where(t.ActionRequest.kind == "hide")
            ).one()
            == "pending"
        )


def test_staff_leave_refused_then_accepted(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime
) -> None:
    seed_case(sessions, now, restricted=False)
    refused = runner.invoke(app, ["staff", "leave", "cjones", "--on", "2027-01-31"])
    assert refused.exit_code == 1 and "name a successor" in refused.output
    accepted = runner.invoke(
        app, ["staff", "leave", "cjones", "--on", "2027-01-31", "--successor", "fali"]
    )
    assert accepted.exit_code == 0, accepted.output
    assert "oakfield-bluesky: administrators after handover: dmurphy, fali" in accepted.output
    bad_date = runner.invoke(app, ["staff", "leave", "cjones", "--on", "31/01/2027"])
    assert bad_date.exit_code == 2
