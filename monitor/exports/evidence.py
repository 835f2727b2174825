"""The evidence export of one or more cases, for the DSL, LADO or police (R7)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor import audit
from monitor.constants import Category, Role
from monitor.directory import Directory, Person
from monitor.exports.bundle import render, stamp, write_bundle
from monitor.exports.common import (
    ExportRefused,
    ExportResult,
    Requester,
    UnknownCases,
    UnknownRequester,
    requester_for,
    unknown_staff,
)
from monitor.exports.format import (
    chunks,
    column_order,
    encode,
    london_text,
    pretty,
    to_csv,
    to_json,
    utc_text,
)
from monitor.exports.rows import Names, case_row, evidence_row, history_row
from monitor.rules.permissions import evidence_export_kind, export_refusal
from monitor.rules.visibility import may_see_content
from monitor.storage import tables as t
from monitor.storage.queries.cases import school_of

NAMED_CASES = 5  # a folder for up to this many cases names each of them
HASH_RULE = "sha256 of the snapshot as JSON, sorted keys, separators (',', ':'), UTF-8"


def evidence_row_columns() -> tuple[str, ...]:
    """The evidence CSV's columns, in order."""
    return (
        "case_id",
        "evidence_id",
        "intact",
        "sha256",
        "platform",
        "account",
        "url",
        "author_handle",
        "author_id",
        "author_name",
        "text",
        "posted_at_london",
        "posted_at_utc",
        "captured_at_london",
        "captured_at_utc",
    )


def _cases(session: Session, case_ids: Sequence[int]) -> list[t.Case]:
    """The cases ``case_ids`` names, in id order (UnknownCases when any is missing)."""
    wanted = sorted(set(case_ids))
    if not wanted:
        raise ValueError("give at least one case id")
    found = {
        c.id: c
        for chunk in chunks(wanted)
        for c in session.scalars(select(t.Case).where(t.Case.id.in_(chunk)))
    }
    missing = [cid for cid in wanted if cid not in found]
    if missing:
        raise UnknownCases(missing)
    return [found[cid] for cid in wanted]


def evidence_refusal(
    directory: Directory,
    person: Person,
    roles: Iterable[Role],
    *,
    school_key: str | None,
    category: Category,
    restricted: bool,
) -> str | None:
    """Why a case's evidence may not go to ``person``; None when it may (CLI and web alike)."""
    sight = may_see_content(
        directory, person, school_key=school_key, category=category, restricted=restricted
    )
    return export_refusal(
        roles,
        evidence_export_kind(category=category, restricted=restricted),
        serves_school=person.serves(school_key),
        content=sight.access,
    )


def _refusal(
    session: Session, case: t.Case, requester: Requester, directory: Directory
) -> str | None:
    """Why this case's evidence may not go to ``requester``; None when it may."""
    school = school_of(session, case)
    return evidence_refusal(
        directory,
        requester.person,
        requester.roles,
        school_key=school.key if school is not None else None,
        category=Category(case.category),
        restricted=case.restricted,
    )


def _allowed_requester(
    session: Session,
    cases: Sequence[t.Case],
    *,
    now: datetime,
    staff: str,
    directory: Directory,
    via: str,
) -> Requester:
    """Who asks, once every case may go to them; else each refusal audited, then raised."""
    requester = requester_for(directory, staff, via)
    refusals = {
        case.id: why
        for case in cases
        if (
            why := unknown_staff(staff)
            if requester is None
            else _refusal(session, case, requester, directory)
        )
    }
    for cid, why in refusals.items():
        audit.record(
            session,
            at=now,
            actor=requester.person.key if requester else via,
            action="case.evidence_export_refused",
            subject=f"case:{cid}",
            case_id=cid,
            reason=why,
            details={"as": staff, "os_user": via},
        )
    if requester is None:
        raise UnknownRequester(unknown_staff(staff))
    if refusals:
        raise ExportRefused("; ".join(f"case {cid}: {why}" for cid, why in refusals.items()))
    return requester


@dataclass
class _Gathered:
    """Every case's records: flat rows for the CSV files, nested ones for JSON and HTML."""

    evidence: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    document: list[dict[str, Any]] = field(default_factory=list)  # evidence.json's cases
    report: list[dict[str, Any]] = field(default_factory=list)  # report.html's cases


def _gather(session: Session, cases: Sequence[t.Case]) -> _Gathered:
    names = Names.load(session)
    gathered = _Gathered()
    for found in cases:
        case = case_row(found, names)
        records = session.scalars(
            select(t.Evidence).where(t.Evidence.case_id == found.id).order_by(t.Evidence.id)
        ).all()
        events = session.scalars(
            select(t.AuditEvent).where(t.AuditEvent.case_id == found.id).order_by(t.AuditEvent.seq)
        ).all()
        rows = [evidence_row(r) for r in records]
        history = [history_row(e) for e in events]
        gathered.evidence += rows
        gathered.history += history
        pairs = list(zip(rows, records, strict=True))
        gathered.document.append(
            {
                **case,
                "evidence": [{**row, "snapshot": record.snapshot} for row, record in pairs],
                "history": history,
            }
        )
        gathered.report.append(
            {
                **case,
                "evidence": [
                    {**row, "snapshot_json": pretty(record.snapshot)} for row, record in pairs
                ],
                "history": history,
            }
        )
    return gathered


def _chain(session: Session) -> dict[str, Any]:
    """Whether the audit log's hash chain is intact, and where it breaks."""
    checked, breaks = audit.verify_chain(session)
    return {
        "events_checked": checked,
        "intact": not breaks,
        "breaks": [{"seq": b.seq, "problem": b.problem} for b in breaks],
    }


def _files(
    gathered: _Gathered,
    *,
    ids: Sequence[int],
    chain: dict[str, Any],
    requester: Requester,
    now: datetime,
) -> dict[str, bytes]:
    generated = {"utc": utc_text(now), "london": london_text(now)}
    html = render(
        "evidence.html",
        title="Evidence report: case " + ", ".join(str(c) for c in ids),
        generated=generated,
        actor=requester.label,
        chain=chain,
        cases=gathered.report,
    )
    document = {
        "generated_at_utc": generated["utc"],
        "generated_at_london": generated["london"],
        "generated_by": requester.person.key,
        "generated_by_name": requester.person.name,
        "generated_via": requester.via,
        "audit_chain": chain,
        "hash_rule": HASH_RULE,
        "cases": gathered.document,
    }
    return {
        "report.html": encode(html),
        "evidence.csv": to_csv(
            gathered.evidence, column_order(gathered.evidence, list(evidence_row_columns()))
        ),
        "case_history.csv": to_csv(gathered.history, column_order(gathered.history, [])),
        "evidence.json": to_json(document),
    }


def _stem(ids: Sequence[int], now: datetime) -> str:
    named = (
        "evidence-case-" + "-".join(str(c) for c in ids)
        if len(ids) <= NAMED_CASES
        else f"evidence-{len(ids)}-cases"
    )
    return f"{named}-{stamp(now)}"


def _record_custody(
    session: Session,
    ids: Sequence[int],
    gathered: _Gathered,
    files: dict[str, bytes],
    *,
    actor: str,
    via: str,
    now: datetime,
) -> None:
    """One ``case.evidence_exported`` event per case (chain of custody)."""
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    for cid in ids:
        audit.record(
            session,
            at=now,
            actor=actor,
            action="case.evidence_exported",
            subject=f"case:{cid}",
            case_id=cid,
            details={
                "evidence_ids": [
                    r["evidence_id"] for r in gathered.evidence if r["case_id"] == cid
                ],
                "files": digests,
                "os_user": via,
            },
        )


@dataclass(frozen=True)
class EvidenceBuild:
    """An evidence export made in memory: its files, before anything is written or audited."""

    requester: Requester
    ids: list[int]
    files: dict[str, bytes]
    gathered: _Gathered
    document: dict[str, Any]


def build_evidence(
    session: Session,
    case_ids: Sequence[int],
    *,
    now: datetime,
    staff: str,
    directory: Directory,
    via: str,
) -> EvidenceBuild:
    """The export's files for ``case_ids`` (refusals audited, then raised as ExportRefused)."""
    cases = _cases(session, case_ids)
    requester = _allowed_requester(
        session, cases, now=now, staff=staff, directory=directory, via=via
    )
    ids = [case.id for case in cases]
    gathered = _gather(session, cases)
    files = _files(gathered, ids=ids, chain=_chain(session), requester=requester, now=now)
    return EvidenceBuild(requester, ids, files, gathered, json.loads(files["evidence.json"]))


def record_custody(
    session: Session, built: EvidenceBuild, files: dict[str, bytes], *, now: datetime
) -> None:
    """The chain of custody for what was handed over: one audit event per case."""
    _record_custody(
        session,
        built.ids,
        built.gathered,
        files,
        actor=built.requester.person.key,
        via=built.requester.via,
        now=now,
    )


def export_evidence(
    session: Session,
    case_ids: Sequence[int],
    out: Path,
    *,
    now: datetime,
    staff: str,
    directory: Directory,
    via: str,
    as_zip: bool = False,
) -> ExportResult:
    """Write the evidence and history of ``case_ids`` for the DSL, LADO or police.

    Only for the roles ``EXPORT_ROLES`` names, of the cases' schools (R6, R7): a refusal
    writes nothing and appends a ``case.evidence_export_refused`` audit event per refused
    case. An export appends one ``case.evidence_exported`` event per case (chain of custody).
    """
    built = build_evidence(session, case_ids, now=now, staff=staff, directory=directory, via=via)
    ids, gathered, files = built.ids, built.gathered, built.files
    path = write_bundle(out, _stem(ids, now), files, as_zip=as_zip)
    record_custody(session, built, files, now=now)
    return ExportResult(
        path=path,
        files=tuple(sorted([*files, "manifest.json"])),
        counts={
            "cases": len(ids),
            "evidence": len(gathered.evidence),
            "history": len(gathered.history),
            "not_intact": sum(1 for r in gathered.evidence if not r["intact"]),
        },
    )
