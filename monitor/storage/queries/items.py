"""Items: idempotent inserts of what a poll found, quarantine, own posts, the connector's view."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import InterfaceError, OperationalError, StatementError
from sqlalchemy.orm import Session

from connectors.base import Item as PlatformItem
from connectors.base import escaped_json
from monitor.constants import ItemKind
from monitor.storage import tables as t
from monitor.storage.repo import insert_statement

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 500


def _row(account: t.Account, stream: str, item: PlatformItem, now: datetime) -> dict[str, Any]:
    return {
        "platform": item.platform.value,
        "platform_id": item.platform_id,
        "account_id": account.id,
        "stream": stream,
        "kind": item.kind.value,
        "url": item.url,
        "author_id": item.author.id,
        "author_handle": item.author.handle,
        "author_name": item.author.display_name,
        "text": item.text,
        "created_at": item.created_at,
        "seen_at": now,
        "parent_id": item.parent_id,
        "root_id": item.root_id,
        "is_own": item.is_own,
        "engagement": dict(item.engagement),
        "raw": dict(item.raw),
        "visibility": "visible",
        "flagged": False,
    }


def _insert(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    statement = (
        insert_statement(session, t.Item)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["platform", "platform_id"])
        .returning(t.Item.id)
    )
    return list(session.scalars(statement))


def store_items(
    session: Session, account: t.Account, stream: str, items: Sequence[PlatformItem], now: datetime
) -> list[int]:
    """Insert items not stored before; returns the ids of the new rows (duplicates are skipped).

    One statement for the whole page: it fails as a whole if the database refuses one
    item (``store_page`` falls back to one at a time and quarantines what is refused).
    """
    if not items:
        return []
    # one row per id even within a page
    return _insert(session, [_row(account, stream, i, now) for i in _unique(items)])


def _unique(items: Sequence[PlatformItem]) -> list[PlatformItem]:
    return list({item.platform_id: item for item in items}.values())


@dataclass(frozen=True)
class Stored:
    """What storing one page did: new item ids, and ids of the quarantine rows it added."""

    new_ids: list[int]
    quarantined_ids: list[int]


def _refused(exc: Exception) -> bool:
    """The database (or the driver) refused this data, not a lost connection or a lock."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        return False
    return isinstance(exc, (StatementError, ValueError, TypeError))


def describe_refusal(exc: BaseException) -> str:
    """Why an insert failed, without the statement's parameters (they hold the comment)."""
    cause: BaseException = exc
    if isinstance(exc, StatementError) and exc.orig is not None:  # DBAPIError included
        cause = exc.orig
    first = (str(cause).strip().splitlines() or [""])[0]
    text = f"{type(cause).__name__}: {first}"[:MAX_ERROR_CHARS]
    return escaped_json(text)[1:-1]  # ASCII: the message may quote the bad character


def store_page(
    session: Session, account: t.Account, stream: str, items: Sequence[PlatformItem], now: datetime
) -> Stored:
    """Store a page: in one statement, else item by item; quarantine what is still refused.

    Each attempt runs in a savepoint, so a refused item leaves the transaction (and the
    cursor saved in it) usable. A lost connection or a lock is raised, never quarantined.
    """
    if not items:
        return Stored([], [])
    unique = _unique(items)
    try:
        with session.begin_nested():
            return Stored(_insert(session, [_row(account, stream, i, now) for i in unique]), [])
    except Exception as exc:
        if not _refused(exc):
            raise
        log.warning(
            "%s: the database refused a page of %d %s items (%s); storing them one by one",
            account.key,
            len(unique),
            stream,
            describe_refusal(exc),
        )
    new_ids: list[int] = []
    quarantined: list[int] = []
    for item in unique:
        try:
            with session.begin_nested():
                new_ids += _insert(session, [_row(account, stream, item, now)])
        except Exception as exc:
            if not _refused(exc):
                raise
            row = quarantine(session, account, stream, item, describe_refusal(exc), now=now)
            if row is not None:
                quarantined.append(row)
    return Stored(new_ids, quarantined)


def _item_payload(item: PlatformItem) -> str:
    return escaped_json(
        {
            "platform": item.platform.value,
            "platform_id": item.platform_id,
            "kind": item.kind.value,
            "url": item.url,
            "author": {
                "id": item.author.id,
                "handle": item.author.handle,
                "display_name": item.author.display_name,
            },
            "text": item.text,
            "created_at": item.created_at.isoformat(),
            "parent_id": item.parent_id,
            "root_id": item.root_id,
            "is_own": item.is_own,
            "engagement": dict(item.engagement),
            "raw": dict(item.raw),
        }
    )


def quarantine(
    session: Session,
    account: t.Account,
    stream: str,
    item: PlatformItem,
    error: str,
    *,
    now: datetime,
) -> int | None:
    """Keep an item the database refused (escaped, so storable); None if already kept."""
    platform_id = escaped_json(item.platform_id)[1:-1][:512]
    known = session.scalar(
        select(t.QuarantinedItem.id).where(
            t.QuarantinedItem.platform == item.platform.value,
            t.QuarantinedItem.platform_id == platform_id,
        )
    )
    if known is not None:
        return None
    row = t.QuarantinedItem(
        account_id=account.id,
        stream=stream,
        platform=item.platform.value,
        platform_id=platform_id,
        error=error,
        payload=_item_payload(item),
        quarantined_at=now,
    )
    session.add(row)
    session.flush()
    log.warning("%s: quarantined item %s (%s)", account.key, platform_id, error)
    return row.id


def quarantined_count(session: Session) -> int:
    """How many items the database refused and keeps in quarantine."""
    return session.scalar(select(func.count()).select_from(t.QuarantinedItem)) or 0


def recent_own_posts(
    session: Session, account_id: int, *, since: datetime, limit: int = 50
) -> list[str]:
    """Platform ids of the account's own recent posts, newest first (whose replies we watch)."""
    return list(
        session.scalars(
            select(t.Item.platform_id)
            .where(
                t.Item.account_id == account_id,
                t.Item.is_own.is_(True),
                t.Item.kind == ItemKind.POST.value,
                t.Item.created_at >= since,
            )
            .order_by(t.Item.created_at.desc())
            .limit(limit)
        )
    )


def to_platform_item(row: t.Item) -> PlatformItem:
    """The connector's view of a stored item (for actions and re-checks)."""
    from connectors.base import Author
    from monitor.constants import Platform

    return PlatformItem(
        platform=Platform(row.platform),
        platform_id=row.platform_id,
        kind=ItemKind(row.kind),
        url=row.url,
        author=Author(id=row.author_id, handle=row.author_handle, display_name=row.author_name),
        text=row.text,
        created_at=row.created_at,
        parent_id=row.parent_id,
        root_id=row.root_id,
        is_own=row.is_own,
        engagement=dict(row.engagement),
        raw=dict(row.raw),
    )
