"""The scaled mode under SIGKILL: four workers on a real RabbitMQ and Redis, one of them
killed at random moments again and again while 200 accounts on the local reddit keep getting
comments. Afterwards every comment is stored once, every alert was delivered once, and no
account was ever polled by two workers at once.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.constants import AlertStatus
from monitor.storage import tables as t
from tests.scale.fleet import Fleet, Proc, leader_and_workers
from tests.servers.reddit_server import RedditServer
from tests.servers.slack_server import SlackServer

ACCOUNTS = int(os.environ.get("SCALE_TEST_ACCOUNTS", "200"))
KILLS = int(os.environ.get("SCALE_TEST_KILLS", "20"))
WORKERS = 4
COMMENT_EVERY = 0.1  # seconds between comments while the workers are being killed
READY = "scaled worker consuming"
pytestmark = [pytest.mark.peer, pytest.mark.slow, pytest.mark.timeout(900)]

TEXTS = [
    "Thanks for the update, see you on Friday",
    "you are a useless idiot and a disgrace",
    "What time does the fair start?",
    "Lovely photos of sports day",
]


def produce(fleet: Fleet, produced: list[str], stop: threading.Event, rng: random.Random) -> None:
    n = 0
    while not stop.is_set():
        key = fleet.key(rng.randrange(fleet.count))
        produced.append(fleet.comment(key, f"{TEXTS[n % len(TEXTS)]} #{n}"))
        n += 1
        stop.wait(COMMENT_EVERY)


def ready_workers(workers: list[Proc], timeout: float = 120.0) -> list[Proc]:
    """The workers consuming now (a restarted one needs a few seconds to start)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = [w for w in workers if w.ready(READY)]
        if ready:
            return ready
        time.sleep(0.05)
    raise AssertionError("no worker came back")


def overlaps(trace: Path, killed: dict[int, float]) -> list[str]:
    """Accounts whose leases (take..give, or take..the holder's SIGKILL) ever overlapped."""
    spans: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    open_: dict[tuple[str, int], float] = {}
    for line in trace.read_text().splitlines():
        event = json.loads(line)
        if not event["name"].startswith("poll:"):
            continue
        slot = (event["name"], event["pid"])
        if event["e"] == "take":
            open_[slot] = event["t"]
        else:
            spans[event["name"]].append((open_.pop(slot), event["t"], event["pid"]))
    for (name, pid), start in open_.items():
        spans[name].append((start, killed.get(pid, float("inf")), pid))
    bad = []
    for name, found in spans.items():
        found.sort()
        for (_s1, e1, p1), (s2, _e2, p2) in itertools.pairwise(found):
            if s2 < e1:
                bad.append(f"{name}: pid {p1} until {e1:.3f}, pid {p2} from {s2:.3f}")
    return bad


def test_workers_killed_at_random_lose_and_duplicate_nothing(
    sessions: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    slack: SlackServer,
    prefix: str,
) -> None:
    server = RedditServer(ratelimit_limit=1_000_000).start()
    fleet = Fleet(server, ACCOUNTS)
    config = fleet.write_config(
        tmp_path / "monitor.yaml",
        poll_interval="10s",
        worker={
            "assess_every": "2s",
            "deliver_every": "2s",
            "actions_every": "10s",
            "verify_every": "60s",
            "compliance_every": "60s",
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
        threads=4,
    )
    rng = random.Random(20261205)
    produced: list[str] = []
    stop = threading.Event()
    producer = threading.Thread(target=produce, args=(fleet, produced, stop, rng), daemon=True)
    killed: dict[int, float] = {}
    try:
        leader.start()
        for worker in workers:
            worker.start()
        leader.wait_for("now leads")
        for worker in workers:
            worker.wait_for(READY)
        producer.start()
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.3, 2.5))  # a random moment of real work
            victim = rng.choice(ready_workers(workers))
            pid = victim.pids[-1]
            killed[pid] = victim.kill()
            victim.start()
        stop.set()
        producer.join(timeout=10)

        def settled() -> bool:
            with sessions() as session:
                stored = set(
                    session.scalars(select(t.Item.platform_id).where(t.Item.is_own.is_(False)))
                )
                unassessed = session.scalar(
                    select(func.count())
                    .select_from(t.Item)
                    .outerjoin(t.Assessment, t.Assessment.item_id == t.Item.id)
                    .where(t.Assessment.id.is_(None))
                )
                undelivered = session.scalar(
                    select(func.count())
                    .select_from(t.Alert)
                    .where(t.Alert.status != AlertStatus.SENT.value)
                )
            return stored >= set(produced) and unassessed == 0 and undelivered == 0

        deadline = time.monotonic() + 300
        while not settled():
            assert time.monotonic() < deadline, "every comment stored and every alert delivered"
            time.sleep(0.5)
        for worker in workers:
            assert worker.terminate() == 0  # a drain: running tasks finish, then exit 0
        assert leader.terminate() == 0
    finally:
        stop.set()
        for proc in [leader, *workers]:
            proc.ensure_dead()
        server.stop()
    assert len(killed) == KILLS
    with sessions() as session:
        stored = session.scalars(select(t.Item.platform_id).where(t.Item.is_own.is_(False))).all()
        alerts = session.scalars(select(t.Alert)).all()
        cases_opened = session.scalar(select(func.count()).select_from(t.Case)) or 0
    assert sorted(stored) == sorted(produced)  # each exactly once
    assert cases_opened >= len(produced) // 4  # the abusive comments open cases
    sent = Counter(
        _alert_key(m.params.get("metadata")) for m in slack.messages if m.thread_ts is None
    )
    assert all(count == 1 for count in sent.values()), [k for k, c in sent.items() if c > 1][:5]
    assert set(sent) == {a.idempotency_key for a in alerts}
    # the leases were used by several workers, and never held twice for one account
    takes = [json.loads(line) for line in trace.read_text().splitlines()]
    pollers = {e["pid"] for e in takes if e["name"].startswith("poll:")}
    assert len(pollers) > WORKERS
    assert overlaps(trace, killed) == []


def _alert_key(metadata: Any) -> str | None:
    if isinstance(metadata, str):
        metadata = json.loads(metadata)
    if isinstance(metadata, dict):
        return (metadata.get("event_payload") or {}).get("alert_key")
    return None
