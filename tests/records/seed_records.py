"""Helpers that put items, cases, evidence, actions and alerts in the test database."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor import cases, evidence
from monitor.config import load_config
from monitor.constants import CaseState, Category, Severity
from monitor.directory import Directory, load_directory
from monitor.storage import tables as t
from monitor.sync import apply_config
from tests.conftest import EXAMPLE_CONFIG, FIXED_NOW

ACCOUNT_KEY = "oakfield-bluesky"
_serial = itertools.count(1)


def sync_example(session: Session, now: datetime) -> t.Account:
    """Apply config/example.yaml; returns the Oakfield Bluesky account."""
    apply_config(session, load_config(EXAMPLE_CONFIG, environ={}).config, now=now)
    return session.scalars(select(t.Account).where(t.Account.key == ACCOUNT_KEY)).one()


def example_directory(session: Session, now: datetime = FIXED_NOW) -> Directory:
    """The staff directory with config/example.yaml's routing as of ``now`` (sync it first)."""
    return load_directory(session, load_config(EXAMPLE_CONFIG, environ={}).config.routing, now=now)


def add_item(
    session: Session,
    account: t.Account,
    *,
    seen_at: datetime,
    text: str = "a comment",
    handle: str = "someone.bsky.social",
    author_id: str | None = None,
    flagged: bool = False,
    assessed: bool = True,
    url: str | None = None,
    platform: str = "bluesky",
) -> t.Item:
    """One stored comment (and its assessment unless ``assessed`` is false)."""
    n = next(_serial)
    item = t.Item(
        platform=platform,
        platform_id=f"at://did:plc:test/app.bsky.feed.post/{n}",
        account_id=account.id,
        stream="replies",
        kind="reply",
        url=url if url is not None else f"https://bsky.app/profile/x/post/{n}",
        author_id=author_id or f"did:plc:{handle.casefold()}",
        author_handle=handle,
        author_name=None,
        text=text,
        created_at=seen_at,
        seen_at=seen_at,
        engagement={},
        raw={"n": n},
        visibility="visible",
        flagged=flagged,
    )
    session.add(item)
    session.flush()
    if assessed:
        session.add(
            t.Assessment(
                item_id=item.id,
                model="original",
                scores={"toxicity": 0.9 if flagged else 0.01},
                categories=["abusive"] if flagged else [],
                severity="high" if flagged else "none",
                matches=[],
                assessed_at=seen_at,
            )
        )
        session.flush()
    return item


def add_case(
    session: Session,
    *,
    opened_at: datetime,
    item: t.Item | None = None,
    state: CaseState = CaseState.NEW,
    closed_at: datetime | None = None,
    title: str = "Abusive reply",
    category: Category = Category.ABUSIVE,
    school_id: int | None = None,
) -> t.Case:
    """A case opened through monitor.cases (so it has audit history), moved to ``state``."""
    case, _created = cases.open_case(
        session,
        dedupe_key=f"test:{next(_serial)}",
        category=category,
        severity=Severity.HIGH,
        title=title,
        now=opened_at,
        item_id=item.id if item else None,
        account_id=item.account_id if item else None,
        school_id=school_id,
        restricted=category is Category.SAFEGUARDING,
        details={"categories": [category.value], "note": "personal detail"},
    )
    if state is not CaseState.NEW:
        cases.change_state(session, case, state, actor="test", now=closed_at or opened_at)
    return case


def add_case_without_history(
    session: Session, *, opened_at: datetime, closed_at: datetime, state: CaseState
) -> t.Case:
    """A settled case inserted directly (no audit events refer to it)."""
    case = t.Case(
        dedupe_key=f"bare:{next(_serial)}",
        category=Category.TWO_ADMINS.value,
        severity=Severity.LOW.value,
        state=state.value,
        title="Only one administrator",
        opened_at=opened_at,
        closed_at=closed_at,
        details={},
    )
    session.add(case)
    session.flush()
    return case


def capture(
    session: Session, item: t.Item, case: t.Case | None, captured_at: datetime
) -> t.Evidence:
    """An evidence record of ``item`` as monitor.evidence captures it."""
    return evidence.capture(
        session,
        item=item,
        case_id=case.id if case else None,
        account_key=ACCOUNT_KEY,
        captured_by="worker",
        now=captured_at,
    )


def add_action(
    session: Session,
    *,
    item: t.Item | None,
    case: t.Case | None,
    at: datetime,
    status: str = "done",
    kind: str = "hide",
) -> t.ActionRequest:
    """An action request (hide by default)."""
    row = t.ActionRequest(
        idempotency_key=f"action:{next(_serial)}",
        case_id=case.id if case else None,
        item_id=item.id if item else None,
        kind=kind,
        params={},
        requested_by="test",
        requested_at=at,
        status=status,
        done_at=at if status == "done" else None,
        result={},
    )
    session.add(row)
    session.flush()
    return row


def add_removal_check(
    session: Session,
    *,
    item: t.Item,
    case: t.Case | None,
    action: t.ActionRequest | None,
    due_at: datetime,
    checked: bool = True,
) -> t.RemovalCheck:
    """A removal re-check, done unless ``checked`` is false."""
    row = t.RemovalCheck(
        case_id=case.id if case else None,
        item_id=item.id,
        action_id=action.id if action else None,
        due_at=due_at,
        is_final=True,
        checked_at=due_at if checked else None,
        outcome="hidden" if checked else None,
    )
    session.add(row)
    session.flush()
    return row


def add_alert(
    session: Session, *, at: datetime, status: str = "sent", case: t.Case | None = None
) -> t.Alert:
    """An outbox alert created (and, when sent, delivered) at ``at``."""
    row = t.Alert(
        idempotency_key=f"alert:{next(_serial)}",
        channel="slack",
        target="C123",
        kind="case_opened",
        case_id=case.id if case else None,
        urgent=False,
        payload={},
        status=status,
        attempts=1,
        created_at=at,
        next_attempt_at=None,
        sent_at=at if status == "sent" else None,
    )
    session.add(row)
    session.flush()
    return row


def ids(session: Session, model: Any) -> set[int]:
    """Every id in ``model``'s table."""
    return set(session.scalars(select(model.id)))
