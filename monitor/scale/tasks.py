"""The tasks: thin wrappers that run the existing jobs (monitor.worker) under leases and budgets.

Each task commits its own transactions through the job it calls and returns; Dramatiq
acknowledges the message only then, so a worker that dies mid-task leaves the message to
RabbitMQ, which hands it to another worker. Every job is safe to run again: items are
unique per platform id with the cursor saved in the same transaction, assessments are
upserted, alerts leave through the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from monitor.clock import utcnow
from monitor.constants import Platform
from monitor.rules.rate_budgets import bucket_name
from monitor.scale.broker import ScaleSettings
from monitor.scale.budget import Buckets
from monitor.scale.lease import Leases
from monitor.storage import tables as t
from monitor.worker import Worker

log = logging.getLogger(__name__)
MAX_RETRIES = 4  # then the message goes to its queue's dead-letter queue
MIN_BACKOFF_MS = 500
MAX_BACKOFF_MS = 8_000
BATCH = 64  # items per scoring task: workers share a burst batch by batch
QUEUED_TTL_S = 300  # a poll is not queued twice for one account within this (see Runtime)


@dataclass
class Runtime:
    """What the tasks of one worker process share (set once by ``monitor worker --scale``)."""

    worker: Worker
    leases: Leases
    buckets: Buckets
    redis: Any
    scale: ScaleSettings
    tasks: Tasks
    deliver: Callable[[datetime], Any]
    _buckets_of: dict[str, tuple[Platform, str]] = field(default_factory=dict, repr=False)

    def bucket_of(self, account_key: str) -> tuple[Platform, str] | None:
        """The platform and budget bucket of an account (None: no such enabled account)."""
        if account_key not in self._buckets_of:
            with self.worker.sessions() as session:
                account = session.scalars(
                    select(t.Account).where(t.Account.key == account_key)
                ).one_or_none()
                if account is None:
                    return None
                platform = Platform(account.platform)
                try:
                    client_id = self.worker.pool.account_ref(account).credentials.get("client_id")
                except Exception:
                    client_id = None  # the poll itself reports the missing credential
            name = bucket_name(
                platform, account_key=account_key, client_id=client_id, egress=self.scale.egress
            )
            self._buckets_of[account_key] = (platform, name)
        return self._buckets_of[account_key]

    def nudge(self, job: str) -> None:
        """What a job asks for next, as a task (new items are sent as batches by the poll)."""
        if job == "deliver":
            self.tasks.deliver.send()
        elif job == "actions":
            self.tasks.actions.send()


_RUNTIME: Runtime | None = None


def set_runtime(runtime: Runtime | None) -> None:
    """The runtime the tasks of this process use."""
    global _RUNTIME
    _RUNTIME = runtime


def _runtime() -> Runtime:
    if _RUNTIME is None:
        raise RuntimeError("no scaled-mode runtime in this process (monitor worker --scale)")
    return _RUNTIME


def queued_flag(prefix: str, account_key: str) -> str:
    """The Redis key that says a poll of ``account_key`` waits in the queue."""
    return f"{prefix}:queued:poll:{account_key}"


def poll(account_key: str) -> None:
    """Poll one account, under its lease and within its platform's shared budget."""
    rt = _runtime()
    rt.redis.delete(queued_flag(rt.scale.prefix, account_key))
    found = rt.bucket_of(account_key)
    if found is None:
        log.info("no account %s any more: poll dropped", account_key)
        return
    platform, bucket = found
    budget = rt.scale.budgets[platform]
    wait = rt.buckets.wait(bucket, budget)
    if wait > 0:
        log.info(
            "%s: the %s budget is spent for %.1f s; polled next time", account_key, bucket, wait
        )
        return
    with rt.leases.hold(f"poll:{account_key}") as held:
        if not held:
            log.debug("%s is being polled by another worker", account_key)
            return
        outcome = rt.worker.poll(account_key, utcnow())
    rt.buckets.charge(bucket, budget, outcome.requests)
    new = list(outcome.new_item_ids)
    for start in range(0, len(new), BATCH):
        rt.tasks.assess.send(new[start : start + BATCH])


def assess(item_ids: Sequence[int]) -> None:
    """Score one batch of items (those still waiting) and open the cases the policy asks for."""
    _runtime().worker.assess_items(item_ids, utcnow())


def rescore() -> None:
    """Score again the items scored by the rules alone while the model was away."""
    rt = _runtime()
    with rt.leases.hold("job:rescore") as held:
        if held:
            rt.worker.assess(utcnow(), rescore=True)


def deliver() -> None:
    """Send what the outbox holds (one worker at a time: the others leave it to that one)."""
    rt = _runtime()
    with rt.leases.hold("job:deliver") as held:
        if held:
            rt.deliver(utcnow())


def actions() -> None:
    """Carry out the platform actions requested (one worker at a time)."""
    rt = _runtime()
    with rt.leases.hold("job:actions") as held:
        if held:
            rt.worker.run_actions(utcnow())


def verify() -> None:
    """Re-check hidden or removed items (one worker at a time)."""
    rt = _runtime()
    with rt.leases.hold("job:verify") as held:
        if held:
            rt.worker.verify(utcnow())


@dataclass
class Tasks:
    """The actors, declared on one broker under one prefix (the leader sends, workers run)."""

    poll: Any
    assess: Any
    rescore: Any
    deliver: Any
    actions: Any
    verify: Any

    @classmethod
    def declare(
        cls,
        broker: Any,
        scale: ScaleSettings,
        *,
        retries: int = MAX_RETRIES,
        backoff_ms: tuple[int, int] = (MIN_BACKOFF_MS, MAX_BACKOFF_MS),
    ) -> Tasks:
        """Declare every actor on ``broker`` with its queue named under ``scale.prefix``.

        A failing task is retried ``retries`` times, waiting between ``backoff_ms`` (twice
        as long each time), then goes to its queue's dead-letter queue.
        """
        import dramatiq

        def actor(fn: Callable[..., None], queue: str) -> Any:
            declare = dramatiq.actor(
                broker=broker,
                actor_name=f"{scale.prefix}.{fn.__name__}",
                queue_name=scale.queue(queue),
                max_retries=retries,
                min_backoff=backoff_ms[0],
                max_backoff=backoff_ms[1],
            )
            return declare(fn)

        return cls(
            poll=actor(poll, "poll"),
            assess=actor(assess, "assess"),
            rescore=actor(rescore, "assess"),
            deliver=actor(deliver, "deliver"),
            actions=actor(actions, "actions"),
            verify=actor(verify, "verify"),
        )
