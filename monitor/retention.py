"""The retention purge (R14): delete what the policy no longer allows us to keep.

Policy (every window is N x 24 hours before ``now``):

- A case is *settled* when it is closed or dismissed; every other state (including
  ``responded``, which can still be escalated) counts as live. Nothing a live case
  depends on is ever removed.
- Unflagged items (``flagged`` false, no case and no evidence refer to them) go
  ``unflagged_items_days`` after they were first seen, with their assessments.
- Flagged items (or items a case or evidence refers to) go ``flagged_items_days``
  after they were first seen, and only once every case that refers to them (directly,
  through evidence or through an action request) settled at least ``flagged_items_days``
  ago. The evidence snapshot, not the item, is the formal record (R7).
- Evidence goes ``evidence_days`` after capture, and only once its case (if any)
  settled at least ``evidence_days`` ago: evidence of a live case is never deleted.
- Cases settled more than ``closed_cases_days`` ago lose their removal checks and
  action requests. ``audit_events.case_id`` references ``cases`` without ON DELETE,
  and the hash-chained log is never edited, so a case with audit history (in practice
  every case) is *scrubbed* instead: its title becomes ``SCRUBBED_TITLE``, its
  details are emptied and its item link cleared. Only a case with no audit event,
  evidence or alert is deleted outright. Audit events themselves are never touched.
- Quarantined items (the database refused them) go ``unflagged_items_days`` after
  they were quarantined, once the IT case that reports them is settled; one no case
  has reported yet is kept.
- Delivered (``sent``) alerts go ``alerts_days`` after they were sent, unless their
  case is still live (the row is what stops the same alert being sent twice).
  Pending and failed alerts are kept.
- Anything with a pending or running action request, or an unchecked removal check,
  is kept until that work is done.

Deletes run in keyset-paged batches of ids, so memory and statement size stay flat at
millions of rows; one audit event (counts and cutoffs only, no content) records each
purge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Select, delete, func, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from monitor import audit
from monitor.clock import require_aware
from monitor.config_models import Retention
from monitor.constants import ActionStatus, AlertStatus, CaseState
from monitor.storage import tables as t

SETTLED_STATES: frozenset[str] = frozenset({CaseState.CLOSED.value, CaseState.DISMISSED.value})
BUSY_ACTION_STATES: frozenset[str] = frozenset(
    {ActionStatus.PENDING.value, ActionStatus.RUNNING.value}
)
SCRUBBED_TITLE = "[removed under the retention policy]"
DEFAULT_BATCH_SIZE = 1000  # well under SQLite's bound-parameter limit
AUDIT_ACTOR = "retention"
AUDIT_ACTION = "retention.purged"


@dataclass(frozen=True)
class Cutoffs:
    """Rows older than these instants are past their retention window."""

    unflagged_items: datetime
    flagged_items: datetime
    evidence: datetime
    closed_cases: datetime
    alerts: datetime


def cutoffs(retention: Retention, now: datetime) -> Cutoffs:
    """The cutoff instant for each retention window (pure)."""
    now = require_aware(now)

    def days(n: int) -> datetime:
        return now - timedelta(days=n)

    return Cutoffs(
        unflagged_items=days(retention.unflagged_items_days),
        flagged_items=days(retention.flagged_items_days),
        evidence=days(retention.evidence_days),
        closed_cases=days(retention.closed_cases_days),
        alerts=days(retention.alerts_days),
    )


@dataclass(frozen=True)
class PurgeReport:
    """How many rows one purge removed (or would remove, on a dry run)."""

    cutoffs: Cutoffs
    dry_run: bool
    items: int = 0
    assessments: int = 0
    evidence: int = 0
    cases_deleted: int = 0
    cases_scrubbed: int = 0
    action_requests: int = 0
    removal_checks: int = 0
    alerts: int = 0
    quarantined_items: int = 0

    def counts(self) -> dict[str, int]:
        """The per-table counts, in a fixed order."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _NOT_COUNTS}


_NOT_COUNTS = frozenset({"cutoffs", "dry_run"})


def purge(
    session: Session,
    retention: Retention,
    *,
    now: datetime,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    commit_batches: bool = False,
) -> PurgeReport:
    """Apply the retention policy; see the module docstring for exactly what goes.

    ``commit_batches`` commits after every batch so a long purge never holds the write
    lock for long (use it with a plain session, not inside ``session.begin()``).
    ``dry_run`` does the same work inside a savepoint and rolls it back, so the counts
    are exact and nothing changes.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    limits = cutoffs(retention, now)
    if dry_run:
        savepoint = session.begin_nested()
        try:
            counts = _Purger(session, limits, batch_size, commit=None).run()
        finally:
            savepoint.rollback()
        return PurgeReport(cutoffs=limits, dry_run=True, **counts)
    commit = session.commit if commit_batches else None
    counts = _Purger(session, limits, batch_size, commit=commit).run()
    report = PurgeReport(cutoffs=limits, dry_run=False, **counts)
    audit.record(
        session,
        at=require_aware(now),
        actor=AUDIT_ACTOR,
        action=AUDIT_ACTION,
        subject="retention",
        details={
            "counts": report.counts(),
            "cutoffs": {k: v.isoformat() for k, v in asdict(limits).items()},
        },
    )
    if commit_batches:
        session.commit()
    return report


# ------------------------------------------------------------- selections


def _holding_cases(cutoff: datetime) -> Select[int]:
    """Cases that still need their rows: live, or settled on or after ``cutoff``."""
    return select(t.Case.id).where(
        or_(
            t.Case.state.not_in(SETTLED_STATES),
            t.Case.closed_at.is_(None),
            t.Case.closed_at >= cutoff,
        )
    )


def _live_cases() -> Select[int]:
    return select(t.Case.id).where(t.Case.state.not_in(SETTLED_STATES))


def _busy_item_ids() -> list[Select[Any]]:
    """Items with work outstanding: a pending or running action, an unchecked re-check."""
    return [
        select(t.ActionRequest.item_id).where(
            t.ActionRequest.item_id.is_not(None), t.ActionRequest.status.in_(BUSY_ACTION_STATES)
        ),
        select(t.RemovalCheck.item_id).where(t.RemovalCheck.checked_at.is_(None)),
    ]


def _case_item_ids() -> Select[int | None]:
    return select(t.Case.item_id).where(t.Case.item_id.is_not(None))


def _evidence_item_ids() -> Select[int | None]:
    return select(t.Evidence.item_id).where(t.Evidence.item_id.is_not(None))


def _unflagged_items(limits: Cutoffs) -> list[ColumnElement[bool]]:
    # NOT IN over uncorrelated subqueries: each is evaluated once (hashed), not per row;
    # the subqueries exclude NULLs, which would otherwise make NOT IN match nothing.
    return [
        t.Item.flagged.is_(False),
        t.Item.seen_at < limits.unflagged_items,
        t.Item.id.not_in(_case_item_ids()),
        t.Item.id.not_in(_evidence_item_ids()),
        *(t.Item.id.not_in(busy) for busy in _busy_item_ids()),
    ]


def _flagged_items(limits: Cutoffs) -> list[ColumnElement[bool]]:
    cutoff = limits.flagged_items
    holding = _holding_cases(cutoff)
    return [
        or_(
            t.Item.flagged.is_(True),
            t.Item.id.in_(_case_item_ids()),
            t.Item.id.in_(_evidence_item_ids()),
        ),
        t.Item.seen_at < cutoff,
        t.Item.id.not_in(_case_item_ids().where(t.Case.id.in_(holding))),
        t.Item.id.not_in(_evidence_item_ids().where(t.Evidence.case_id.in_(holding))),
        t.Item.id.not_in(
            select(t.ActionRequest.item_id).where(
                t.ActionRequest.item_id.is_not(None), t.ActionRequest.case_id.in_(holding)
            )
        ),
        t.Item.id.not_in(select(t.RemovalCheck.item_id).where(t.RemovalCheck.case_id.in_(holding))),
        *(t.Item.id.not_in(busy) for busy in _busy_item_ids()),
    ]


def _expired_evidence(limits: Cutoffs) -> list[ColumnElement[bool]]:
    return [
        t.Evidence.captured_at < limits.evidence,
        or_(
            t.Evidence.case_id.is_(None),
            t.Evidence.case_id.not_in(_holding_cases(limits.evidence)),
        ),
    ]


def _expired_cases(limits: Cutoffs) -> list[ColumnElement[bool]]:
    return [
        t.Case.state.in_(SETTLED_STATES),
        t.Case.closed_at < limits.closed_cases,
        t.Case.title != SCRUBBED_TITLE,
        t.Case.id.not_in(
            select(t.ActionRequest.case_id).where(
                t.ActionRequest.case_id.is_not(None),
                t.ActionRequest.status.in_(BUSY_ACTION_STATES),
            )
        ),
    ]


def _expired_quarantine(limits: Cutoffs) -> list[ColumnElement[bool]]:
    return [
        t.QuarantinedItem.quarantined_at < limits.unflagged_items,
        t.QuarantinedItem.case_id.is_not(None),
        t.QuarantinedItem.case_id.not_in(_live_cases()),
    ]


def _expired_alerts(limits: Cutoffs) -> list[ColumnElement[bool]]:
    return [
        # delivered or cancelled by a person; undelivered ones are kept (and retried)
        t.Alert.status.in_([AlertStatus.SENT.value, AlertStatus.CANCELLED.value]),
        func.coalesce(t.Alert.sent_at, t.Alert.created_at) < limits.alerts,
        or_(t.Alert.case_id.is_(None), t.Alert.case_id.not_in(_live_cases())),
    ]


# ------------------------------------------------------------- execution


def _rowcount(result: Any) -> int:
    return max(cast(CursorResult[Any], result).rowcount, 0)


class _Purger:
    """Runs the batched deletes in dependency order and counts what went."""

    def __init__(
        self,
        session: Session,
        limits: Cutoffs,
        batch_size: int,
        *,
        commit: Callable[[], None] | None,
    ) -> None:
        self.session = session
        self.limits = limits
        self.batch_size = batch_size
        self.commit = commit
        self.counts: dict[str, int] = {
            f.name: 0 for f in fields(PurgeReport) if f.name not in _NOT_COUNTS
        }

    def run(self) -> dict[str, int]:
        """Alerts, evidence and quarantined items, then cases, then items (children first)."""
        for ids in self._pages(t.Alert.id, _expired_alerts(self.limits)):
            self._delete(t.Alert, t.Alert.id, ids, "alerts")
            self._end_batch()
        for ids in self._pages(t.QuarantinedItem.id, _expired_quarantine(self.limits)):
            self._delete(t.QuarantinedItem, t.QuarantinedItem.id, ids, "quarantined_items")
            self._end_batch()
        for ids in self._pages(t.Evidence.id, _expired_evidence(self.limits)):
            self._delete(t.Evidence, t.Evidence.id, ids, "evidence")
            self._end_batch()
        for ids in self._pages(t.Case.id, _expired_cases(self.limits)):
            self._purge_cases(ids)
            self._end_batch()
        for conditions in (_unflagged_items(self.limits), _flagged_items(self.limits)):
            for ids in self._pages(t.Item.id, conditions, lock=True):
                self._purge_items(ids)
                self._end_batch()
        return self.counts

    def _pages(
        self,
        key: InstrumentedAttribute[int],
        conditions: list[ColumnElement[bool]],
        *,
        lock: bool = False,
    ) -> Iterator[list[int]]:
        # Keyset paging on the primary key: rows kept (or deleted) behind the cursor are
        # never scanned again, so the whole pass is linear in the table size.
        after = 0
        while True:
            query = select(key).where(key > after, *conditions).order_by(key)
            if lock:
                # PostgreSQL: lock the chosen rows, so evidence or a case the worker adds
                # for one of them meanwhile waits (its foreign key needs the row) instead
                # of racing the delete; rows the worker holds are skipped until next run.
                # SQLite needs nothing: BEGIN IMMEDIATE already serialises writers.
                query = query.with_for_update(skip_locked=True)
            ids = list(self.session.scalars(query.limit(self.batch_size)))
            if not ids:
                return
            yield ids
            after = ids[-1]

    def _delete(
        self,
        model: type[t.Base],
        column: InstrumentedAttribute[Any],
        ids: list[int],
        counter: str,
        extra: ColumnElement[bool] | None = None,
    ) -> None:
        condition = column.in_(ids) if extra is None else or_(column.in_(ids), extra)
        result = self.session.execute(
            delete(model).where(condition).execution_options(synchronize_session=False)
        )
        self.counts[counter] += _rowcount(result)

    def _purge_cases(self, ids: list[int]) -> None:
        actions = select(t.ActionRequest.id).where(t.ActionRequest.case_id.in_(ids))
        self._delete(
            t.RemovalCheck,
            t.RemovalCheck.case_id,
            ids,
            "removal_checks",
            extra=t.RemovalCheck.action_id.in_(actions),
        )
        self._delete(t.ActionRequest, t.ActionRequest.case_id, ids, "action_requests")
        referenced: set[int] = set()
        for column in (t.AuditEvent.case_id, t.Evidence.case_id, t.Alert.case_id):
            referenced.update(
                cid for cid in self.session.scalars(select(column).where(column.in_(ids))) if cid
            )
        deletable = [cid for cid in ids if cid not in referenced]
        scrub = [cid for cid in ids if cid in referenced]
        if deletable:
            self._delete(t.Case, t.Case.id, deletable, "cases_deleted")
        if scrub:
            result = self.session.execute(
                update(t.Case)
                .where(t.Case.id.in_(scrub))
                .values(title=SCRUBBED_TITLE, details={}, item_id=None)
                .execution_options(synchronize_session=False)
            )
            self.counts["cases_scrubbed"] += _rowcount(result)

    def _purge_items(self, ids: list[int]) -> None:
        # Children first, explicitly, so they are counted (the FKs would cascade anyway);
        # cases, evidence and action requests keep their rows with item_id set to NULL.
        self._delete(t.Assessment, t.Assessment.item_id, ids, "assessments")
        self._delete(t.RemovalCheck, t.RemovalCheck.item_id, ids, "removal_checks")
        self._delete(t.Item, t.Item.id, ids, "items")

    def _end_batch(self) -> None:
        if self.commit is not None:
            self.commit()
        else:
            self.session.flush()
