"""The leader's enqueuing on the real RabbitMQ: a poll is never queued twice for one account."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime

import pika
import pytest
from sqlalchemy.orm import Session, sessionmaker

from monitor.scale.broker import ScaleSettings, make_broker, make_redis
from monitor.scale.enqueue import Enqueuer
from monitor.scale.tasks import Tasks, queued_flag
from monitor.scheduler import JobSpec
from tests.scale.fleet import BROKER_URL, REDIS_URL, clean_namespace, new_prefix, services_up

pytestmark = [pytest.mark.peer]


@pytest.fixture
def scale() -> Iterator[ScaleSettings]:
    if not services_up():
        if os.environ.get("REQUIRE_PEERS"):
            pytest.fail("RabbitMQ (127.0.0.1:5672) and Redis (127.0.0.1:6379) must run")
        pytest.skip("RabbitMQ or Redis is not running on 127.0.0.1")
    settings = ScaleSettings(BROKER_URL, REDIS_URL, new_prefix())
    try:
        yield settings
    finally:
        clean_namespace(settings.prefix)


def waiting(scale: ScaleSettings, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    try:
        declared = connection.channel().queue_declare(scale.queue(queue), passive=True)
        return int(declared.method.message_count)
    finally:
        connection.close()


def test_a_poll_waits_in_the_queue_once_per_account(
    scale: ScaleSettings, sessions: sessionmaker[Session]
) -> None:
    broker = make_broker(scale)
    redis = make_redis(scale)
    try:
        enqueuer = Enqueuer(Tasks.declare(broker, scale), redis, scale, sessions)
        assert enqueuer.poll("oakfield-bluesky")
        assert not enqueuer.poll("oakfield-bluesky")  # the scheduler ticks again: not queued
        assert enqueuer.poll("riverside-reddit")
        assert waiting(scale, "poll") == 2
        redis.delete(queued_flag(scale.prefix, "oakfield-bluesky"))  # a worker took it
        assert enqueuer.poll("oakfield-bluesky")
        assert waiting(scale, "poll") == 3
    finally:
        broker.close()


def test_the_heavy_jobs_only_enqueue_the_light_ones_run_on_the_leader(
    scale: ScaleSettings, sessions: sessionmaker[Session]
) -> None:
    ran: list[str] = []

    def runner(name: str) -> Callable[[datetime], None]:
        return lambda _now: ran.append(name)

    specs = [
        JobSpec(name, runner(name))
        for name in ("poll:oakfield-bluesky", "deliver", "actions", "verify", "compliance")
    ]
    broker = make_broker(scale)
    try:
        enqueuer = Enqueuer(Tasks.declare(broker, scale), make_redis(scale), scale, sessions)
        for spec in enqueuer.specs(specs):
            spec.run(None)  # type: ignore[arg-type]
    finally:
        broker.close()
    assert ran == ["compliance"]
    assert [waiting(scale, q) for q in ("poll", "deliver", "actions", "verify")] == [1, 1, 1, 1]
