"""The leader in the scaled mode: its scheduler only enqueues the heavy jobs as tasks.

Polls, assessment batches, deliveries, action requests and verifications become messages;
the light jobs (compliance, publishing, retention, the digest) still run on the leader.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.posts import watched_threads
from monitor.scale.broker import ScaleSettings
from monitor.scale.tasks import BATCH, QUEUED_TTL_S, Tasks, queued_flag
from monitor.scheduler import JobSpec
from monitor.storage import tables as t

log = logging.getLogger(__name__)
SWEEP_LIMIT = 2_000  # waiting items looked at per sweep
RESEND_S = 120.0  # an item sent for scoring is sent again if still waiting after this


class Enqueuer:
    """Sends tasks for the leader's scheduler."""

    def __init__(
        self,
        tasks: Tasks,
        redis: Any,
        scale: ScaleSettings,
        sessions: sessionmaker[Session],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tasks = tasks
        self._redis = redis
        self._scale = scale
        self._sessions = sessions
        self._clock = clock
        self._sent: dict[int, float] = {}  # item id -> when it was last sent for scoring

    def poll(self, account_key: str) -> bool:
        """Queue a poll of ``account_key`` unless one is queued already; True when sent."""
        flag = queued_flag(self._scale.prefix, account_key)
        if not self._redis.set(flag, "1", nx=True, ex=QUEUED_TTL_S):
            return False
        self._tasks.poll.send(account_key)
        return True

    def assess_sweep(self) -> int:
        """Queue batches of the items still waiting (a poll that died after storing its items
        never sent their batch); returns how many items were sent."""
        with self._sessions() as session:
            waiting: Sequence[int] = session.scalars(
                select(t.Item.id)
                .outerjoin(t.Assessment, t.Assessment.item_id == t.Item.id)
                .where(t.Assessment.id.is_(None))
                .order_by(t.Item.id)
                .limit(SWEEP_LIMIT)
            ).all()
        now = self._clock()
        still = set(waiting)
        self._sent = {i: at for i, at in self._sent.items() if i in still}
        due = [i for i in waiting if now - self._sent.get(i, -RESEND_S) >= RESEND_S]
        for start in range(0, len(due), BATCH):
            batch = due[start : start + BATCH]
            self._tasks.assess.send(batch)
            self._sent.update(dict.fromkeys(batch, now))
        return len(due)

    def watched(self, now: datetime) -> int:
        """Queue polls of the accounts with a post published within the hour."""
        with self._sessions() as session:
            keys = sorted({key for key, _root in watched_threads(session, now)})
        return sum(self.poll(key) for key in keys)

    def specs(self, specs: list[JobSpec]) -> list[JobSpec]:
        """``specs`` with the heavy jobs' runs replaced by sending their tasks."""
        sends: dict[str, Callable[[datetime], Any]] = {
            "assess": lambda _now: self.assess_sweep(),
            "rescore": lambda _now: self._tasks.rescore.send(),
            "deliver": lambda _now: self._tasks.deliver.send(),
            "actions": lambda _now: self._tasks.actions.send(),
            "verify": lambda _now: self._tasks.verify.send(),
            "watch-replies": self.watched,
        }
        out = []
        for spec in specs:
            if spec.id.startswith("poll:"):
                key = spec.id.removeprefix("poll:")
                out.append(replace(spec, run=self._poller(key)))
            elif spec.id in sends:
                out.append(replace(spec, run=sends[spec.id]))
            else:
                out.append(spec)
        return out

    def _poller(self, key: str) -> Callable[[datetime], Any]:
        return lambda _now: self.poll(key)
