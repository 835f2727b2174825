"""Zero loss under SIGKILL: a peer keeps producing comments while the worker is killed and restarted.

Afterwards every produced comment is stored exactly once and every alert was delivered
exactly once (Slack messages carry their outbox key as metadata, so duplicates would show).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.constants import AlertStatus
from monitor.storage import tables as t
from tests.connectors.harness_reddit import RedditHarness, reddit_harness_fixture  # noqa: F401
from tests.servers.slack_server import BOT_TOKEN, SlackServer

KILLS = 20
COMMENTS = 120
REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.peer, pytest.mark.slow]


def write_config(tmp_path: Path, harness: RedditHarness) -> Path:
    ref = harness.account()
    config = {
        "organisation": {"name": "Crash Test Trust"},
        "schools": [{"key": "oakwood", "name": "Oakwood Academy"}],
        "staff": [
            {"id": "dsl", "name": "Dee Lead", "roles": ["dsl"], "slack_user_id": "U0DSL"},
            {
                "id": "mod",
                "name": "Dan Mod",
                "roles": ["moderator", "comms"],
                "slack_user_id": "U0DAN",
            },
            {
                "id": "head",
                "name": "Amy Head",
                "roles": ["principal", "slt"],
                "slack_user_id": "U0AMY",
            },
        ],
        "accounts": [
            {
                "key": "oakwood-reddit",
                "platform": "reddit",
                "handle": ref.handle,
                "school": "oakwood",
                "admins": ["mod", "head"],
                "approved_by": "head",
                "linked_email": "office@oakwood.example.sch.uk",
                "poll_interval": "1s",
                "watch_mentions": False,
                "options": dict(ref.options),
                "credentials": {
                    name: {"env": f"CRASH_REDDIT_{name.upper()}"} for name in ref.credentials
                },
            }
        ],
        "classifier": {
            "checkpoint": "/nonexistent/model.ckpt",
            "huggingface_config_path": "/nonexistent",
            "concern": {"enabled": False},  # rules only: no model at all
        },
        "routing": {"slack_default_channel": "C0ALERTS", "slack_it_channel": "C0ALERTS"},
        "worker": {
            "assess_every": "1s",
            "deliver_every": "1s",
            "actions_every": "5s",
            "verify_every": "30s",
            "compliance_every": "30s",
        },
    }
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


class WorkerRunner:
    """Starts ``monitor worker`` as a separate process and kills it."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "worker"],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=log,
        )

    def wait_leading(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_path.read_text(errors="replace").count("now leads") > self.leads_seen:
                self.leads_seen += 1
                return
            assert self.proc is not None and self.proc.poll() is None, self.log_path.read_text()[
                -3000:
            ]
            time.sleep(0.05)
        raise AssertionError("the worker never took the lead")

    leads_seen = 0

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    server = SlackServer().start()
    try:
        yield server
    finally:
        server.stop()


def produce(harness: RedditHarness, post: str, produced: list[str], stop: threading.Event) -> None:
    texts = [
        "Thanks for the update, see you on Friday",
        "you are a useless idiot and a disgrace",
        "Ring me on 07700 900{n:03d} about the trip",
        "What time does the fair start?",
    ]
    for n in range(COMMENTS):
        if stop.is_set():
            return
        produced.append(harness.reply(post, texts[n % len(texts)].format(n=n) + f" #{n}"))
        time.sleep(0.15)


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigkill_loses_nothing_and_duplicates_nothing(
    sessions: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    reddit_harness: RedditHarness,
    slack: SlackServer,
) -> None:
    config_path = write_config(tmp_path, reddit_harness)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "MONITOR_CONFIG": str(config_path),
        "DATABASE_URL": db_url,
    }
    env.update(
        {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_BASE_URL": slack.base_url,
            "LOG_LEVEL": "INFO",
            "HF_HUB_OFFLINE": "1",
        }
    )
    env.update(
        {f"CRASH_REDDIT_{k.upper()}": v for k, v in reddit_harness.account().credentials.items()}
    )
    env.pop("SLACK_APP_TOKEN", None)
    post = reddit_harness.own_post("Summer fair: all welcome")
    produced: list[str] = []
    stop = threading.Event()
    producer = threading.Thread(
        target=produce, args=(reddit_harness, post, produced, stop), daemon=True
    )
    runner = WorkerRunner(env, tmp_path / "worker.log")
    rng = random.Random(20261122)
    producer.start()
    try:
        for _ in range(KILLS):
            runner.start()
            runner.wait_leading()
            time.sleep(rng.uniform(0.0, 2.5))  # a random moment of real work
            runner.kill()
        producer.join(timeout=120)
        assert not producer.is_alive()
        runner.start()
        runner.wait_leading()

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

        wait_for(settled, 180, "every comment stored and every alert delivered")
        assert runner.terminate() == 0  # a clean stop on SIGTERM
    finally:
        stop.set()
        if runner.proc is not None and runner.proc.poll() is None:
            runner.proc.kill()
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert log.count("now leads") == KILLS + 1
    with sessions() as session:
        stored = session.scalars(select(t.Item.platform_id).where(t.Item.is_own.is_(False))).all()
        assert sorted(stored) == sorted(produced)  # each exactly once
        alerts = session.scalars(select(t.Alert)).all()
        cases_opened = session.scalar(select(func.count()).select_from(t.Case)) or 0
    assert cases_opened >= COMMENTS // 2  # abusive, personal data and questions all open cases
    sent_keys = Counter(
        (m.params.get("metadata") or {}).get("event_payload", {}).get("alert_key")
        if isinstance(m.params.get("metadata"), dict)
        else _key(m.params.get("metadata"))
        for m in slack.messages
        if m.thread_ts is None
    )
    assert all(count == 1 for count in sent_keys.values()), [
        k for k, c in sent_keys.items() if c > 1
    ][:5]
    assert set(sent_keys) == {a.idempotency_key for a in alerts}
    assert all(a.status == AlertStatus.SENT.value for a in alerts)


def _key(metadata: Any) -> str | None:
    import json

    if isinstance(metadata, str):
        return str(json.loads(metadata).get("event_payload", {}).get("alert_key"))
    return None
