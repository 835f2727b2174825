"""The fault test across workers: the local reddit throttles one account (429 with a long
Retry-After) while two scaled workers on the real RabbitMQ and Redis poll a dozen accounts.
Every other account keeps being polled at its interval, by both workers, and the throttled
account is paused until the time the platform asked for, not retried in a loop.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.storage import tables as t
from tests.scale.fleet import Fleet, leader_and_workers
from tests.servers.reddit_server import RedditServer
from tests.servers.slack_server import SlackServer

ACCOUNTS = 12
WORKERS = 2
INTERVAL = 5.0  # seconds between polls of one account
WINDOW = 30.0  # seconds watched after the throttling starts
RETRY_AFTER = 600  # what the platform's 429 asks for, in seconds
THROTTLED = 0  # the index of the throttled account
READY = "scaled worker consuming"
pytestmark = [pytest.mark.peer, pytest.mark.slow, pytest.mark.timeout(300)]


class Stamped:
    """The times of the requests each OAuth client made to the local reddit."""

    def __init__(self, server: RedditServer) -> None:
        self.at: dict[str | None, list[float]] = defaultdict(list)
        self._lock = threading.Lock()
        record = server.record

        def stamped(
            method: str, path: str, params: dict[str, str], client_id: str | None, user: str | None
        ) -> None:
            with self._lock:
                self.at[client_id].append(time.time())
            record(method, path, params, client_id, user)

        server.record = stamped  # type: ignore[method-assign]

    def since(self, client: str, start: float) -> list[float]:
        with self._lock:
            return [at for at in self.at[client] if at >= start]


def poll_takes(trace: Path) -> dict[str, list[tuple[float, int]]]:
    """Each account's leases taken to poll it: (time, worker pid), oldest first."""
    takes: dict[str, list[tuple[float, int]]] = defaultdict(list)
    if not trace.exists():
        return takes
    for line in trace.read_text().splitlines():
        event = json.loads(line)
        if event["e"] == "take" and event["name"].startswith("poll:"):
            takes[event["name"].removeprefix("poll:")].append((event["t"], event["pid"]))
    return takes


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_one_throttled_account_slows_no_other_across_workers(
    sessions: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    slack: SlackServer,
    prefix: str,
) -> None:
    server = RedditServer(ratelimit_limit=1_000_000)
    server.retry_after = RETRY_AFTER
    stamps = Stamped(server)
    server.start()
    fleet = Fleet(server, ACCOUNTS)
    throttled = fleet.key(THROTTLED)
    config = fleet.write_config(
        tmp_path / "monitor.yaml",
        poll_interval=f"{INTERVAL:.0f}s",
        worker={
            "assess_every": "2s",
            "deliver_every": "2s",
            "actions_every": "30s",
            "verify_every": "300s",
            "compliance_every": "300s",
        },
    )
    trace = tmp_path / "leases.jsonl"
    leader, workers = leader_and_workers(
        fleet,
        config,
        db_url=db_url,
        slack_url=slack.base_url,
        trace=trace,
        prefix=prefix,
        workers=WORKERS,
        threads=2,
    )
    try:
        leader.start()
        for worker in workers:
            worker.start()
        leader.wait_for("now leads", timeout=120)
        for worker in workers:
            worker.wait_for(READY, timeout=120)
        # every account polled once: tokens granted, the fleet in its steady rhythm
        wait_until(
            lambda: len(poll_takes(trace)) == ACCOUNTS, 60, "every account polled before the fault"
        )
        server.fail_next("ratelimit", count=10**6, client_id=f"app-{throttled}")
        start = time.time()
        time.sleep(WINDOW)
        end = time.time()
        for worker in workers:
            assert worker.terminate() == 0
        assert leader.terminate() == 0
    finally:
        for proc in [leader, *workers]:
            proc.ensure_dead()
        server.stop()

    # the throttled account: one request refused, then left alone for the time asked
    refused = stamps.since(f"app-{throttled}", start)
    assert 1 <= len(refused) <= 2, refused
    with sessions() as session:
        health = session.scalars(
            select(t.AccountHealth)
            .join(t.Account, t.Account.id == t.AccountHealth.account_id)
            .where(t.Account.key == throttled)
        ).one()
    paused = health.paused_until
    assert paused is not None
    paused = paused.replace(tzinfo=UTC) if paused.tzinfo is None else paused
    asked = datetime.fromtimestamp(refused[0], UTC) + timedelta(seconds=RETRY_AFTER)
    assert abs(paused - asked) < timedelta(seconds=5)

    # every other account: polled at its interval throughout, by the workers together
    takes = poll_takes(trace)
    pids: set[int] = set()
    slow: dict[str, list[float]] = {}
    for i in range(ACCOUNTS):
        key = fleet.key(i)
        if key == throttled:
            continue
        times = [at for at, _pid in takes[key] if at >= start - INTERVAL and at < end]
        pids.update(pid for at, pid in takes[key] if start <= at < end)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        gaps.append(end - times[-1])
        if max(gaps) > 2 * INTERVAL:
            slow[key] = [round(g, 1) for g in gaps]
        assert len([at for at in times if at >= start]) >= WINDOW / INTERVAL - 1, (key, times)
        assert stamps.since(f"app-{key}", start), key  # real requests, not only leases
    assert slow == {}
    assert len(pids) == WORKERS  # both workers polled
