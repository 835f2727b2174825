"""The subject-access export: everything held about one author, by handle (R14)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor import audit
from monitor.constants import ExportKind
from monitor.directory import Directory
from monitor.exports.bundle import render, stamp, write_bundle
from monitor.exports.common import (
    ExportRefused,
    ExportResult,
    Requester,
    UnknownRequester,
    requester_for,
    unknown_staff,
)
from monitor.exports.format import (
    IN_CHUNK,
    chunks,
    column_order,
    encode,
    london_text,
    normalise_handle,
    to_csv,
    to_json,
    utc_text,
)
from monitor.exports.rows import (
    Names,
    action_row,
    assessment_row,
    case_row,
    evidence_row,
    history_row,
    item_row,
    keys_by_id,
)
from monitor.rules.permissions import export_refusal
from monitor.rules.visibility import is_safeguarding, may_see_content
from monitor.storage import tables as t

_SAFE_NAME = re.compile(r"[^a-z0-9._-]+")
SECTION_TITLES: dict[str, str] = {
    "items": "Posts and comments",
    "assessments": "Automated assessments",
    "cases": "Cases",
    "case_history": "Case history",
    "evidence": "Evidence records",
    "actions": "Actions taken",
}


@dataclass
class SubjectRecords:
    """Everything held about one author."""

    query: str
    handles: list[str]
    items: list[t.Item]
    assessments: list[t.Assessment]
    cases: list[t.Case]
    history: list[t.AuditEvent]
    evidence: list[t.Evidence]
    actions: list[t.ActionRequest]


def _in_chunks(session: Session, model: Any, column: Any, ids: Iterable[int]) -> list[Any]:
    rows: list[Any] = []
    for chunk in chunks(ids):
        rows += session.scalars(select(model).where(column.in_(chunk))).all()
    return sorted(rows, key=lambda r: r.id)


def _items_of(session: Session, wanted: str) -> tuple[list[str], dict[int, t.Item]]:
    """The handles matching ``wanted`` and the items under them or by the same authors."""
    # Compare in Python: SQLite's lower() only folds ASCII, and casefold() is stricter.
    handles = sorted(
        h
        for h in session.scalars(select(t.Item.author_handle).distinct())
        if normalise_handle(h) == wanted
    )
    items: dict[int, t.Item] = {}
    if handles:
        for row in session.scalars(select(t.Item).where(t.Item.author_handle.in_(handles))):
            items[row.id] = row
    for platform, author_id in sorted(_authors(items)):
        for row in session.scalars(
            select(t.Item).where(t.Item.platform == platform, t.Item.author_id == author_id)
        ):
            items[row.id] = row
    return handles, items


def _authors(items: dict[int, t.Item]) -> set[tuple[str, str]]:
    return {(i.platform, i.author_id) for i in items.values() if i.author_id}


def _evidence_about(session: Session, wanted: str, items: dict[int, t.Item]) -> list[t.Evidence]:
    """Evidence of these items, or whose snapshot names the handle or one of their authors."""
    authors = _authors(items)
    evidence: list[t.Evidence] = []
    after = 0
    while True:  # evidence is scanned in pages: its snapshot is JSON
        page = session.scalars(
            select(t.Evidence).where(t.Evidence.id > after).order_by(t.Evidence.id).limit(IN_CHUNK)
        ).all()
        if not page:
            return evidence
        after = page[-1].id
        for record in page:
            snap = record.snapshot if isinstance(record.snapshot, dict) else {}
            by_handle = normalise_handle(str(snap.get("author_handle") or "")) == wanted
            by_author = (snap.get("platform"), snap.get("author_id")) in authors
            if record.item_id in items or by_handle or by_author:
                evidence.append(record)


def find_subject(session: Session, handle: str) -> SubjectRecords:
    """Items, assessments, cases (with history), evidence and actions about one author.

    An item belongs to the subject when its handle matches, or when it has the same
    platform and author id as a matching item (the person changed handle). Evidence
    matches on its snapshot too, so it is found after the item itself was purged.
    """
    wanted = normalise_handle(handle)
    if not wanted:
        raise ValueError("give a handle")
    handles, items = _items_of(session, wanted)
    evidence = _evidence_about(session, wanted, items)
    case_ids = {r.case_id for r in evidence if r.case_id is not None}
    case_ids |= {
        cid
        for chunk in chunks(items)
        for cid in session.scalars(select(t.Case.id).where(t.Case.item_id.in_(chunk)))
    }
    return SubjectRecords(
        query=handle,
        handles=sorted({*handles, *(i.author_handle for i in items.values())}),
        items=sorted(items.values(), key=lambda i: i.id),
        assessments=_in_chunks(session, t.Assessment, t.Assessment.item_id, items),
        cases=_in_chunks(session, t.Case, t.Case.id, case_ids),
        history=sorted(
            _in_chunks(session, t.AuditEvent, t.AuditEvent.case_id, case_ids),
            key=lambda e: e.seq,
        ),
        evidence=evidence,
        actions=_in_chunks(session, t.ActionRequest, t.ActionRequest.item_id, items),
    )


WITHHELD_NOTE = (
    "A safeguarding record exists about this person and must be reviewed by the DSL "
    "before release; only the number of records is shown here."
)
SUBJECT_SECTIONS: tuple[str, ...] = (
    "items",
    "assessments",
    "cases",
    "case_history",
    "evidence",
    "actions",
)


def withhold(
    found: SubjectRecords, case_ids: Iterable[int]
) -> tuple[SubjectRecords, dict[str, int]]:
    """``found`` without these cases, their items and everything about them; counts left out."""
    cases_out = frozenset(case_ids)
    items_out = frozenset(c.item_id for c in found.cases if c.id in cases_out and c.item_id)
    kept = replace(
        found,
        items=[i for i in found.items if i.id not in items_out],
        assessments=[a for a in found.assessments if a.item_id not in items_out],
        cases=[c for c in found.cases if c.id not in cases_out],
        history=[e for e in found.history if e.case_id not in cases_out],
        evidence=[
            r for r in found.evidence if r.case_id not in cases_out and r.item_id not in items_out
        ],
        actions=[
            a for a in found.actions if a.case_id not in cases_out and a.item_id not in items_out
        ],
    )
    before = _section_sizes(found)
    after = _section_sizes(kept)
    return kept, {name: before[name] - after[name] for name in SUBJECT_SECTIONS}


def _section_sizes(found: SubjectRecords) -> dict[str, int]:
    return {
        "items": len(found.items),
        "assessments": len(found.assessments),
        "cases": len(found.cases),
        "case_history": len(found.history),
        "evidence": len(found.evidence),
        "actions": len(found.actions),
    }


def _withheld_from(
    session: Session, found: SubjectRecords, requester: Requester, directory: Directory
) -> list[int]:
    """The subject's safeguarding cases whose content ``requester`` may not have (R6)."""
    schools = keys_by_id(session, t.School)
    return [
        case.id
        for case in found.cases
        if not may_see_content(
            directory,
            requester.person,
            school_key=schools.get(case.school_id) if case.school_id is not None else None,
            category=case.case_category,
            restricted=case.restricted,
        ).allowed
    ]


def _allowed_requester(
    session: Session, *, now: datetime, staff: str, directory: Directory, via: str
) -> Requester:
    """Who asks, if they may answer a subject-access request; else audited, then raised."""
    requester = requester_for(directory, staff, via)
    why = (
        unknown_staff(staff)
        if requester is None
        else export_refusal(requester.roles, ExportKind.SUBJECT_ACCESS)
    )
    if why:
        audit.record(
            session,
            at=now,
            actor=requester.person.key if requester else via,
            action="records.subject_export_refused",
            subject="subject-access",
            reason=why,
            details={"as": staff, "os_user": via},
        )
        raise ExportRefused(why) if requester else UnknownRequester(why)
    assert requester is not None
    return requester


def _sections(session: Session, found: SubjectRecords) -> dict[str, list[dict[str, Any]]]:
    """Each section's rows, in ``SUBJECT_SECTIONS`` order."""
    names = Names.load(session)
    return {
        "items": [item_row(i, names) for i in found.items],
        "assessments": [assessment_row(a) for a in found.assessments],
        "cases": [case_row(c, names) for c in found.cases],
        "case_history": [history_row(e) for e in found.history],
        "evidence": [{**evidence_row(r), "snapshot": r.snapshot} for r in found.evidence],
        "actions": [action_row(a, names) for a in found.actions],
    }


def _with_placeholders(
    sections: dict[str, list[dict[str, Any]]], withheld: dict[str, int]
) -> dict[str, list[dict[str, Any]]]:
    """The rows plus a placeholder row for what was left out: counts only, never content."""
    return {
        name: rows
        + (
            [{"withheld_safeguarding_records": withheld[name], "note": WITHHELD_NOTE}]
            if withheld[name]
            else []
        )
        for name, rows in sections.items()
    }


def _html(
    found: SubjectRecords,
    sections: dict[str, list[dict[str, Any]]],
    withheld: dict[str, int],
    *,
    requester: Requester,
    generated: dict[str, str],
) -> str:
    return render(
        "subject.html",
        title="Subject-access export",
        query=found.query,
        handles=found.handles,
        generated=generated,
        actor=requester.label,
        counts={name: len(rows) for name, rows in sections.items()},
        withheld=withheld,
        withheld_total=sum(withheld.values()),
        withheld_note=WITHHELD_NOTE,
        sections=[
            {
                "title": SECTION_TITLES[name],
                "rows": rows,
                "columns": column_order(rows, []),
                "withheld": withheld[name],
            }
            for name, rows in sections.items()
        ],
    )


def _files(
    found: SubjectRecords,
    sections: dict[str, list[dict[str, Any]]],
    withheld: dict[str, int],
    *,
    requester: Requester,
    now: datetime,
) -> dict[str, bytes]:
    generated = {"utc": utc_text(now), "london": london_text(now)}
    listed = _with_placeholders(sections, withheld)
    document = {
        "query": found.query,
        "matched_handles": found.handles,
        "generated_at_utc": generated["utc"],
        "generated_at_london": generated["london"],
        "generated_by": requester.person.key,
        "generated_by_name": requester.person.name,
        "generated_via": requester.via,
        "withheld_safeguarding": {"note": WITHHELD_NOTE, "counts": withheld}
        if sum(withheld.values())
        else None,
        **listed,
    }
    files: dict[str, bytes] = {
        "index.html": encode(
            _html(found, sections, withheld, requester=requester, generated=generated)
        ),
        "subject.json": to_json(document),
    }
    for name, rows in listed.items():
        plain = [{k: v for k, v in row.items() if k != "snapshot"} for row in rows]
        files[f"{name}.csv"] = to_csv(plain, column_order(plain, []))
    return files


def _stem(handle: str, now: datetime) -> str:
    slug = _SAFE_NAME.sub("_", normalise_handle(handle))[:60].strip("._") or "subject"
    return f"subject-{slug}-{stamp(now)}"


def export_subject(
    session: Session,
    handle: str,
    out: Path,
    *,
    now: datetime,
    staff: str,
    directory: Directory,
    via: str,
    as_zip: bool = False,
) -> ExportResult:
    """Write everything held about the author ``handle`` (a subject-access request).

    Only for the roles ``EXPORT_ROLES`` names (R14): a refusal writes nothing and appends a
    ``records.subject_export_refused`` audit event. An export appends one
    ``records.subject_exported`` event. Both hold no handle: the audit log is never purged,
    so it must not keep the subject's. For anyone but those who may see a safeguarding
    case's content (``rules.visibility``), the case, its items and everything about them are
    left out: each section says how many records were withheld, and that the DSL must review
    them (R6).
    """
    requester = _allowed_requester(session, now=now, staff=staff, directory=directory, via=via)
    everything = find_subject(session, handle)
    found, withheld = withhold(
        everything, _withheld_from(session, everything, requester, directory)
    )
    sections = _sections(session, found)
    files = _files(found, sections, withheld, requester=requester, now=now)
    path = write_bundle(out, _stem(handle, now), files, as_zip=as_zip)
    counts = {name: len(rows) for name, rows in sections.items()}
    audit.record(
        session,
        at=now,
        actor=requester.person.key,
        action="records.subject_exported",
        subject="subject-access",
        details={
            "counts": counts,
            "os_user": via,
            **({"withheld_safeguarding": withheld} if sum(withheld.values()) else {}),
        },
    )
    return ExportResult(
        path=path,
        files=tuple(sorted([*files, "manifest.json"])),
        counts=counts,
        withheld={name: n for name, n in withheld.items() if n},
    )


@dataclass(frozen=True)
class SubjectReport:
    """A subject-access report to send to the person: no safeguarding record, nor a hint of one.

    ``withheld`` is for the member of staff who made it, and only when the policy lets them
    see every one of those records (else None: they may not know such a record exists).
    """

    requester: Requester
    query: str
    handles: list[str]
    sections: dict[str, list[dict[str, Any]]]
    withheld: dict[str, int] | None


def subject_report(
    session: Session, handle: str, *, now: datetime, staff: str, directory: Directory, via: str
) -> SubjectReport:
    """Everything held about ``handle`` for the person themself, audited (R14, R6).

    The same rule as ``export_subject`` decides who may make it. Every record of a
    safeguarding case is left out for everyone: the report goes to the person, who must not
    learn from it that such a record exists (the DSL releases those, if ever, through the
    full export). The ``records.subject_exported`` event names no handle and no withheld count.
    """
    requester = _allowed_requester(session, now=now, staff=staff, directory=directory, via=via)
    everything = find_subject(session, handle)
    safeguarding = [
        c.id
        for c in everything.cases
        if is_safeguarding(category=c.case_category, restricted=c.restricted)
    ]
    found, withheld = withhold(everything, safeguarding)
    knows = not _withheld_from(session, everything, requester, directory)
    sections = _sections(session, found)
    counts = {name: len(rows) for name, rows in sections.items()}
    audit.record(
        session,
        at=now,
        actor=requester.person.key,
        action="records.subject_exported",
        subject="subject-access",
        details={"counts": counts, "os_user": via, "form": "report"},
    )
    return SubjectReport(
        requester=requester,
        query=found.query,
        handles=found.handles,
        sections=sections,
        withheld={n: c for n, c in withheld.items() if c} if knows else None,
    )
