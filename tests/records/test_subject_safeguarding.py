"""Subject access (R14) never releases a safeguarding record (R6) except to its school's DSL."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from monitor.constants import Category
from monitor.exports import (
    WITHHELD_NOTE,
    ExportRefused,
    UnknownRequester,
    export_evidence,
    export_subject,
)
from monitor.storage import tables as t
from monitor.storage.db import transaction
from tests.records.seed_records import (
    add_action,
    add_case,
    add_item,
    capture,
    example_directory,
    sync_example,
)

SECRET = "my stepdad hits me, please help"
SECRET_TITLE = "Disclosure by the subject"
HANDLE = "pupil.example"


def seed(session: Session, now: datetime) -> dict[str, Any]:
    """The subject's ordinary abusive reply, and a safeguarding disclosure with its records."""
    account = sync_example(session, now - timedelta(days=30))
    ordinary = add_item(
        session, account, seen_at=now, text="you are rubbish", handle=HANDLE, flagged=True
    )
    abuse = add_case(session, opened_at=now, item=ordinary, school_id=account.school_id)
    capture(session, ordinary, abuse, now)
    disclosure = add_item(session, account, seen_at=now, text=SECRET, handle=HANDLE, flagged=True)
    concern = add_case(
        session,
        opened_at=now,
        item=disclosure,
        category=Category.SAFEGUARDING,
        title=SECRET_TITLE,
        school_id=account.school_id,
    )
    capture(session, disclosure, concern, now)
    # evidence captured before the case existed still belongs to the disclosure
    capture(session, disclosure, None, now)
    add_action(session, item=disclosure, case=concern, at=now, kind="report")
    return {"ordinary": ordinary.id, "disclosure": disclosure.id, "concern": concern.id}


def export_as(
    sessions: sessionmaker[Session], staff: str, out: Path, now: datetime, at: datetime
) -> Any:
    with transaction(sessions) as session:
        return export_subject(
            session,
            "@" + HANDLE,
            out,
            now=now,
            staff=staff,
            directory=example_directory(session, at),
            via="cli:dpo",
        )


WITHHELD = {
    "items": 1,
    "assessments": 1,
    "cases": 1,
    "case_history": 1,
    "evidence": 2,
    "actions": 1,
}


@pytest.mark.parametrize(
    "staff",
    [
        "aokafor",  # Oakfield's principal and SLT
        "gsmith",  # trust IT
        "ewright",  # Riverside's SLT and DSL: not the DSL of this case's school
    ],
)
def test_others_get_a_placeholder_not_the_safeguarding_record(
    sessions: sessionmaker[Session], now: datetime, tmp_path: Path, staff: str
) -> None:
    with transaction(sessions) as session:
        seeded = seed(session, now)
    result = export_as(sessions, staff, tmp_path, now, now)
    assert dict(result.withheld) == WITHHELD
    assert result.counts == {
        "items": 1, "assessments": 1, "cases": 1, "case_history": 1, "evidence": 1, "actions": 0,
    }  # fmt: skip
    files = {p.name: p.read_bytes() for p in result.path.iterdir()}
    for name, data in files.items():  # no file carries the disclosure, not even its title
        text = data.decode("utf-8-sig")
        assert "stepdad" not in text and SECRET_TITLE not in text, name
    document = json.loads(files["subject.json"])
    assert [i["item_id"] for i in document["items"] if "item_id" in i] == [seeded["ordinary"]]
    assert document["withheld_safeguarding"] == {"note": WITHHELD_NOTE, "counts": WITHHELD}
    for section, count in WITHHELD.items():
        placeholder = document[section][-1]
        # a placeholder row per section: counts only
        assert placeholder == {"withheld_safeguarding_records": count, "note": WITHHELD_NOTE}
        assert WITHHELD_NOTE in files[f"{section}.csv"].decode("utf-8-sig")
    summary = files["index.html"].decode()
    assert "must be reviewed by the DSL before release" in summary
    assert "withheld (safeguarding)" in summary
    with sessions() as session:
        event = session.scalars(
            select(t.AuditEvent).where(t.AuditEvent.action == "records.subject_exported")
        ).one()
        assert event.details["withheld_safeguarding"] == WITHHELD


@pytest.mark.parametrize("staff", ["bpatel"])  # Oakfield's DSL
def test_the_schools_dsl_gets_everything(
    sessions: sessionmaker[Session], now: datetime, tmp_path: Path, staff: str
) -> None:
    with transaction(sessions) as session:
        seeded = seed(session, now)
    result = export_as(sessions, staff, tmp_path, now, now)
    assert dict(result.withheld) == {}
    assert result.counts == {
        "items": 2, "assessments": 2, "cases": 2, "case_history": 2, "evidence": 3, "actions": 1,
    }  # fmt: skip
    document = json.loads((result.path / "subject.json").read_text(encoding="utf-8"))
    assert {i["item_id"] for i in document["items"]} == {seeded["ordinary"], seeded["disclosure"]}
    assert SECRET in {i["text"] for i in document["items"]}
    assert seeded["concern"] in {c["case_id"] for c in document["cases"]}
    assert document["withheld_safeguarding"] is None
    assert "must be reviewed by the DSL" not in (result.path / "index.html").read_text()


def test_a_deputy_dsl_who_may_export_gets_everything(
    sessions: sessionmaker[Session], now: datetime, tmp_path: Path
) -> None:
    with transaction(sessions) as session:
        seed(session, now)
        # a deputy who is also a senior leader may answer subject-access requests
        session.execute(
            update(t.Staff).where(t.Staff.key == "dmurphy").values(roles=["deputy_dsl", "slt"])
        )
    result = export_as(sessions, "dmurphy", tmp_path, now, now)
    assert dict(result.withheld) == {} and result.counts["items"] == 2


def test_a_dsl_past_their_leaving_date_cannot_export(
    sessions: sessionmaker[Session], now: datetime, tmp_path: Path
) -> None:
    with transaction(sessions) as session:
        seed(session, now)
        session.execute(
            update(t.Staff).where(t.Staff.key == "bpatel").values(leaving_on=now.date())
        )
    out = tmp_path / "out"
    assert export_as(sessions, "bpatel", out, now, now).counts["items"] == 2  # their last day
    with pytest.raises(UnknownRequester, match="bpatel"):
        export_as(sessions, "bpatel", tmp_path / "later", now, now + timedelta(days=1))
    assert not (tmp_path / "later").exists()


def _no_dsl_in_post(session: Session, now: datetime) -> None:
    """Oakfield's DSL has left and its deputy is away: its principal stands in (R6)."""
    session.execute(
        update(t.Staff)
        .where(t.Staff.key == "bpatel")
        .values(leaving_on=(now - timedelta(days=1)).date())
    )
    session.execute(update(t.Staff).where(t.Staff.key == "dmurphy").values(active=False))


def test_the_principal_standing_in_for_the_dsl_gets_everything(
    sessions: sessionmaker[Session], now: datetime, tmp_path: Path
) -> None:
    # the principal is alerted with the content in the DSL's place, so the export holds it too
    with transaction(sessions) as session:
        seeded = seed(session, now)
        _no_dsl_in_post(session, now)
    result = export_as(sessions, "aokafor", tmp_path, now, now)
    assert dict(result.withheld) == {}
    document = json.loads((result.path / "subject.json").read_text(encoding="utf-8"))
    assert seeded["concern"] in {c["case_id"] for c in document["cases"]}


@pytest.mark.parametrize(
    ("dsl_in_post", "staff", "allowed"),
    [
        (True, "aokafor", False),  # the DSL is in post: the principal may not have it
        (True, "bpatel", True),
        (False, "aokafor", True),  # standing in for the DSL, as alerts and actions treat them
        (False, "ewright", False),  # another school's DSL never
        (False, "gsmith", False),
    ],
)
def test_who_may_export_a_safeguarding_cases_evidence(
    sessions: sessionmaker[Session],
    now: datetime,
    tmp_path: Path,
    dsl_in_post: bool,
    staff: str,
    allowed: bool,
) -> None:
    with transaction(sessions) as session:
        seeded = seed(session, now)
        if not dsl_in_post:
            _no_dsl_in_post(session, now)
    with transaction(sessions) as session:
        call = partial(
            export_evidence,
            session,
            [seeded["concern"]],
            tmp_path / "out",
            now=now,
            staff=staff,
            directory=example_directory(session, now),
            via="cli:dpo",
        )
        if allowed:
            assert call().counts["evidence"] == 1
        else:
            with pytest.raises(ExportRefused):
                call()
            assert not (tmp_path / "out").exists()
