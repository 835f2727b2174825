"""`monitor dead-letters` on the real RabbitMQ: list what failed and why, put it back with its
retries reset (and it then runs), or drop it; refused without the scaled mode or --yes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pika
import pytest
from dramatiq import Message
from dramatiq import Worker as DramatiqWorker
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from monitor.cli import app
from monitor.config_models import Config
from monitor.scale.broker import ScaleSettings, dead_letter_counts, make_broker
from monitor.scale.tasks import Runtime, Tasks, set_runtime
from monitor.storage.db import transaction
from monitor.sync import apply_config
from monitor.worker import Worker
from tests.jobs.test_escalation_flow import KeywordAssessor
from tests.scale.fleet import BROKER_URL, REDIS_URL
from tests.scale.test_dead_letter import failing_delivery, runtime_for, scale, wait_for

__all__ = ["scale"]  # the fixture, shared with test_dead_letter.py

pytestmark = [pytest.mark.peer]


@contextmanager
def consuming(
    broker: Any, runtime: Callable[[Callable[[datetime], Any]], Runtime], deliver: Any
) -> Iterator[None]:
    set_runtime(runtime(deliver))
    consumer = DramatiqWorker(broker, worker_threads=1)
    consumer.start()
    try:
        yield
    finally:
        consumer.stop(timeout=10_000)
        set_runtime(None)


def waiting_messages(queue: str) -> list[Message[Any]]:
    """The messages in ``queue``, read and left there (closing returns them)."""
    connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    try:
        channel = connection.channel()
        found: list[Message[Any]] = []
        while True:
            method, _properties, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                return found
            found.append(Message.decode(body))
    finally:
        connection.close()


def cli(scale: ScaleSettings, *args: str) -> Result:
    env = {
        "MONITOR_BROKER_URL": BROKER_URL,
        "MONITOR_REDIS_URL": REDIS_URL,
        "MONITOR_SCALE_PREFIX": scale.prefix,
        "COLUMNS": "300",
    }
    return CliRunner().invoke(app, ["dead-letters", *args], env=env)


def test_dead_letters_are_listed_requeued_with_fresh_retries_and_run(
    sessions: sessionmaker[Session],
    migrated_engine: Engine,
    config: Config,
    now: datetime,
    scale: ScaleSettings,
    cli_env: Path,
) -> None:
    with transaction(sessions) as session:
        apply_config(session, config, now=now)
    broker = make_broker(scale)
    tasks = Tasks.declare(broker, scale, retries=1, backoff_ms=(50, 100))
    worker = Worker(sessions, config, KeywordAssessor())

    def runtime(deliver: Callable[[datetime], Any]) -> Runtime:
        return runtime_for(worker, migrated_engine, scale, tasks, deliver)

    try:
        with consuming(broker, runtime, failing_delivery):
            tasks.deliver.send()
            tasks.deliver.send()
            wait_for(lambda: dead_letter_counts(scale)["deliver"] == 2, 60, "two dead letters")

        listed = cli(scale, "list")
        assert listed.exit_code == 0, listed.output
        row = next(line for line in listed.output.splitlines() if "│ deliver" in line)
        assert "│ 2 " in row and f"{scale.prefix}.deliver 2" in row
        assert "SlackDown: slack.com unreachable" in row
        assert "requeue --all" in listed.output
        dead = waiting_messages(f"{scale.prefix}.deliver.XQ")
        assert [m.options["retries"] for m in dead] == [1, 1]  # retried once, then given up

        put_back = cli(scale, "requeue", "deliver")
        assert put_back.exit_code == 0, put_back.output
        assert "deliver: 2 task(s) put back." in put_back.output
        assert dead_letter_counts(scale)["deliver"] == 0
        fresh = waiting_messages(f"{scale.prefix}.deliver")
        assert sorted(m.message_id for m in fresh) == sorted(m.message_id for m in dead)
        for message in fresh:
            assert not {"retries", "traceback", "eta"} & set(message.options)
            assert message.queue_name == f"{scale.prefix}.deliver"

        delivered: list[datetime] = []
        with consuming(broker, runtime, delivered.append):  # the cause fixed
            wait_for(lambda: len(delivered) == 2, 60, "the requeued tasks to run")
            wait_for(lambda: not waiting_messages(f"{scale.prefix}.deliver"), 30, "acks")
        assert dead_letter_counts(scale)["deliver"] == 0
        again = cli(scale, "requeue", "--all")
        assert again.exit_code == 0 and "deliver: 0 task(s) put back." in again.output
    finally:
        broker.close()


def test_dead_letters_are_dropped_only_with_yes(scale: ScaleSettings, cli_env: Path) -> None:
    broker = make_broker(scale)
    tasks = Tasks.declare(broker, scale)
    try:
        broker.declare_queue(scale.queue("verify"), ensure=True)  # the queue, its DQ and XQ
        connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
        try:
            channel = connection.channel()
            for n in range(3):
                message = dataclasses.replace(
                    tasks.verify.message(), options={"retries": 4, "traceback": f"E: {n}"}
                )
                channel.basic_publish("", f"{scale.prefix}.verify.XQ", message.encode())
        finally:
            connection.close()
        wait_for(lambda: dead_letter_counts(scale)["verify"] == 3, 10, "three dead letters")

        refused = cli(scale, "purge", "verify")
        assert refused.exit_code == 2 and "--yes" in refused.output
        assert dead_letter_counts(scale)["verify"] == 3
        unknown = cli(scale, "purge", "verfiy", "--yes")
        assert unknown.exit_code == 2 and "Unknown: verfiy." in unknown.output
        both = cli(scale, "purge", "verify", "--all", "--yes")
        assert both.exit_code == 2 and dead_letter_counts(scale)["verify"] == 3

        dropped = cli(scale, "purge", "--all", "--yes")
        assert dropped.exit_code == 0, dropped.output
        assert "verify: 3 task(s) dropped." in dropped.output
        assert "poll: 0 task(s) dropped." in dropped.output  # never declared: nothing
        assert dead_letter_counts(scale)["verify"] == 0
    finally:
        broker.close()


@pytest.mark.parametrize("args", [["list"], ["requeue", "--all"], ["purge", "--all", "--yes"]])
def test_without_the_scaled_mode_there_is_nothing_to_list(
    args: list[str], cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MONITOR_BROKER_URL", raising=False)
    shown = CliRunner().invoke(app, ["dead-letters", *args])
    assert shown.exit_code == 2
    assert "The scaled mode is off (MONITOR_BROKER_URL is not set)" in shown.output
