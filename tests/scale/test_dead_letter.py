"""A task that keeps failing lands in its dead-letter queue on the real RabbitMQ, IT hears of
it once however many fail, and `monitor status` shows the queue."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from dramatiq import Worker as DramatiqWorker
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config_models import Config
from monitor.constants import AlertChannel
from monitor.rules.jobs import JOB_FAILING
from monitor.scale import dead_letter
from monitor.scale.broker import ScaleSettings, dead_letter_counts, make_broker, make_redis
from monitor.scale.budget import Buckets
from monitor.scale.lease import Leases
from monitor.scale.tasks import Runtime, Tasks, set_runtime
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.sync import apply_config
from monitor.worker import Worker
from tests.jobs.test_escalation_flow import KeywordAssessor
from tests.scale.fleet import BROKER_URL, REDIS_URL, clean_namespace, new_prefix, services_up

pytestmark = [pytest.mark.peer]


class SlackDown(Exception):
    """What the delivery job raises in this test, every time."""


def failing_delivery(_now: datetime) -> None:
    raise SlackDown("slack.com unreachable")


@pytest.fixture
def scale(db_url: str) -> Iterator[ScaleSettings]:
    if not db_url.startswith("postgresql"):
        pytest.skip("the scaled mode needs PostgreSQL (DATABASE_URL)")
    if not services_up():
        if os.environ.get("REQUIRE_PEERS"):
            pytest.fail("RabbitMQ (127.0.0.1:5672) and Redis (127.0.0.1:6379) must run")
        pytest.skip("RabbitMQ or Redis is not running on 127.0.0.1")
    settings = ScaleSettings(BROKER_URL, REDIS_URL, new_prefix())
    try:
        yield settings
    finally:
        clean_namespace(settings.prefix)


def runtime_for(
    worker: Worker,
    engine: Engine,
    scale: ScaleSettings,
    tasks: Tasks,
    deliver: Callable[[datetime], Any],
) -> Runtime:
    """What a scaled worker process's tasks share, with ``deliver`` as its delivery job."""
    redis = make_redis(scale)
    return Runtime(
        worker=worker,
        leases=Leases(engine, scale.prefix),
        buckets=Buckets(redis, scale.prefix),
        redis=redis,
        scale=scale,
        tasks=tasks,
        deliver=deliver,
    )


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_task_failing_on_every_retry_is_dead_lettered_and_it_told_once(
    sessions: sessionmaker[Session],
    migrated_engine: Engine,
    config: Config,
    now: datetime,
    scale: ScaleSettings,
    cli_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with transaction(sessions) as session:
        apply_config(session, config, now=now)
    broker = make_broker(scale)
    tasks = Tasks.declare(broker, scale, retries=2, backoff_ms=(50, 100))
    worker = Worker(sessions, config, KeywordAssessor())
    runtime = runtime_for(worker, migrated_engine, scale, tasks, failing_delivery)
    nudged: list[str] = []
    broker.add_middleware(
        dead_letter.middleware(
            dead_letter.notifier(
                sessions, worker.directory, frozenset({AlertChannel.SLACK}), nudged.append
            )
        )
    )
    set_runtime(runtime)
    consumer = DramatiqWorker(broker, worker_threads=1)  # one at a time: no lease skips
    consumer.start()
    try:
        tasks.deliver.send()
        tasks.deliver.send()
        tasks.verify.send()  # a task that works is acknowledged, not dead-lettered
        wait_for(lambda: dead_letter_counts(scale)["deliver"] == 2, 60, "two dead letters")
    finally:
        consumer.stop(timeout=10_000)
        broker.close()
        set_runtime(None)
    assert dead_letter_counts(scale) == {
        "poll": 0,
        "assess": 0,
        "deliver": 2,
        "actions": 0,
        "verify": 0,
    }
    with sessions() as session:
        notices = session.scalars(select(t.Alert).where(t.Alert.kind == JOB_FAILING.value)).all()
    # once to each IT administrator however many messages failed
    assert len(notices) == 1, [n.idempotency_key for n in notices]
    assert notices[0].idempotency_key.startswith(f"dead_letter:{scale.prefix}.deliver:")
    assert "slack.com unreachable" in notices[0].payload["text"]
    assert nudged == ["deliver"]
    monkeypatch.setenv("MONITOR_BROKER_URL", BROKER_URL)
    monkeypatch.setenv("MONITOR_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("MONITOR_SCALE_PREFIX", scale.prefix)
    shown = CliRunner().invoke(app, ["status"], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    assert "Dead-letter queue: 2 task(s) given up (deliver 2)" in shown.output


def test_status_without_a_broker_says_nothing_of_queues(cli_env: Path) -> None:
    shown = CliRunner().invoke(app, ["status"], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    assert "Dead-letter" not in shown.output


def test_scaled_worker_without_a_broker_stops_with_one_line(cli_env: Path) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        shown = CliRunner().invoke(app, ["worker", "--scale"])
    finally:  # the service command set up logging on the runner's stream, closed by now
        root.handlers[:] = handlers
        root.setLevel(level)
    assert shown.exit_code == 2, shown.output
    assert "--scale needs MONITOR_BROKER_URL" in shown.output
