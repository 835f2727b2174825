"""Triage: the rules run on comments as they are stored, so the urgent ones are scored first.

Scoring with the model is the slow step (tens of comments a second on a small server). A burst
of thousands scored oldest first would leave a threat or a disclosure at the back of the queue
for minutes. The rules are cheap: the poll that stores a comment runs them at once, and the
assessment job takes the comments they flag as abuse, threats, safeguarding or personal data
(someone must act on those fast) before the rest. The hits are kept for the assessment, so the
rules run once per comment.

Among the flagged, the gravest go first, but only for a while: each priority has a head start
(``HEAD_START``) and comments are taken by the time their head start runs out (earliest deadline
first). A disclosure found now is scored before an insult found a few seconds ago, yet an insult
never waits behind a stream of graver comments for longer than its allowance.

In memory only: after a restart a backlog is scored oldest first, as it would be without triage.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.config_models import UnknownSchool
from monitor.storage import tables as t

log = logging.getLogger(__name__)
DEFAULT_LIMIT = 50_000  # items remembered; beyond it new ones wait their turn untriaged
# how long a flagged comment may wait behind graver ones found after it, by priority
# (1 + the severity rank of its gravest urgent hit: 5 critical, 4 high, 3 medium, 2 low, 1 none)
HEAD_START: dict[int, timedelta] = {
    5: timedelta(0),
    4: timedelta(seconds=5),
    3: timedelta(seconds=15),
    2: timedelta(seconds=30),
    1: timedelta(seconds=60),
}


def deadline(priority: int, found_at: datetime) -> datetime:
    """When a comment of ``priority`` found at ``found_at`` should be the next one scored."""
    return found_at + HEAD_START.get(priority, max(HEAD_START.values()))


class TriagedLike(Protocol):
    """What triage says of one text (monitor.classify.pipeline.Triaged)."""

    @property
    def priority(self) -> int: ...  # 0: in turn; higher: sooner


@runtime_checkable
class TriagingAssessor(Protocol):
    """An assessor that can run its rules alone first and reuse their hits when scoring."""

    def triage(
        self, texts: Sequence[str], *, school_key: str | None = None
    ) -> Sequence[TriagedLike]: ...

    def assess(
        self,
        texts: Sequence[str],
        *,
        school_key: str | None = None,
        triaged: Sequence[Any] | None = None,
    ) -> Sequence[Any]: ...


class Triage:
    """Triage results of stored items not yet assessed (thread-safe, bounded)."""

    def __init__(self, assessor: TriagingAssessor, *, limit: int = DEFAULT_LIMIT) -> None:
        self.assessor = assessor
        self.limit = limit
        self._lock = threading.Lock()
        self._results: dict[int, TriagedLike] = {}
        self._urgent: dict[int, tuple[datetime, int]] = {}  # item id: (deadline, -priority)

    def __len__(self) -> int:
        with self._lock:
            return len(self._results)

    def put(self, item_id: int, triaged: TriagedLike, found_at: datetime) -> bool:
        """Remember ``triaged`` for ``item_id``; False when full (the item is scored in turn)."""
        with self._lock:
            if item_id not in self._results and len(self._results) >= self.limit:
                return False
            self._results[item_id] = triaged
            if triaged.priority > 0:
                due = deadline(triaged.priority, found_at)
                self._urgent[item_id] = (due, -triaged.priority)
            else:
                self._urgent.pop(item_id, None)
            return True

    def urgent(self, limit: int) -> list[int]:
        """Up to ``limit`` urgent item ids: earliest deadline, then gravest, then oldest first."""
        with self._lock:
            return heapq.nsmallest(limit, self._urgent, key=lambda i: (*self._urgent[i], i))

    def take(self, item_id: int) -> TriagedLike | None:
        """The triage of ``item_id`` (forgotten once taken), or None if it was not triaged."""
        with self._lock:
            self._urgent.pop(item_id, None)
            return self._results.pop(item_id, None)

    def discard(self, item_ids: Iterable[int]) -> None:
        """Forget these items (assessed elsewhere, or gone)."""
        with self._lock:
            for item_id in item_ids:
                self._urgent.pop(item_id, None)
                self._results.pop(item_id, None)

    def discard_below(self, item_id: int) -> None:
        """Forget every item older than ``item_id`` (the oldest still waiting)."""
        with self._lock:
            for old in [i for i in self._results if i < item_id]:
                self._urgent.pop(old, None)
                del self._results[old]

    def run(self, sessions: sessionmaker[Session], item_ids: Sequence[int], now: datetime) -> int:
        """Triage the stored items ``item_ids``, found at ``now``; how many of them are urgent."""
        if not item_ids:
            return 0
        with sessions() as session:
            rows = session.execute(
                select(t.Item.id, t.Item.text, t.School.key)
                .join(t.Account, t.Account.id == t.Item.account_id)
                .join(t.School, t.School.id == t.Account.school_id)
                .where(t.Item.id.in_(list(item_ids)))
                .order_by(t.Item.id)
            ).all()
        by_school: dict[str, list[tuple[int, str]]] = {}
        for item_id, text, school_key in rows:
            by_school.setdefault(school_key, []).append((item_id, text))
        urgent = 0
        for school_key, items in by_school.items():
            try:
                results = self.assessor.triage([text for _, text in items], school_key=school_key)
            except UnknownSchool:
                continue  # a school no longer configured: its items are scored in turn
            for (item_id, _), triaged in zip(items, results, strict=True):
                if self.put(item_id, triaged, now):
                    urgent += triaged.priority > 0
        return urgent
