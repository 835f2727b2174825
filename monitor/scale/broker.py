"""The broker, the queues and the shared Redis of the scaled mode, named under one prefix."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from monitor.constants import Platform
from monitor.rules.rate_budgets import BUDGETS, Budget, parse_overrides
from monitor.settings import Settings

# the queues the leader fills and the workers empty (each has a dead-letter queue, ".XQ")
QUEUES = ("poll", "assess", "deliver", "actions", "verify")
_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


class ScaleError(Exception):
    """The scaled mode cannot start (its settings are incomplete or wrong)."""


@dataclass(frozen=True)
class ScaleSettings:
    """Where the broker and Redis are, and the namespace of this deployment's queues and keys."""

    broker_url: str = field(repr=False)
    redis_url: str = field(repr=False)
    prefix: str = "monitor"
    budgets: dict[Platform, Budget] = field(default_factory=lambda: dict(BUDGETS))
    egress: str = "default"

    @classmethod
    def from_settings(cls, settings: Settings) -> ScaleSettings | None:
        """None unless ``MONITOR_BROKER_URL`` is set (then ``MONITOR_REDIS_URL`` must be too)."""
        if not settings.monitor_broker_url:
            return None
        if not settings.monitor_redis_url:
            raise ScaleError("MONITOR_REDIS_URL must be set with MONITOR_BROKER_URL")
        if not _PREFIX.fullmatch(settings.monitor_scale_prefix):
            raise ScaleError("MONITOR_SCALE_PREFIX: letters, digits, '_' and '-' only")
        try:
            overrides = parse_overrides(settings.monitor_rate_budgets)
        except ValueError as exc:
            raise ScaleError(f"MONITOR_RATE_BUDGETS: {exc}") from None
        return cls(
            settings.monitor_broker_url,
            settings.monitor_redis_url,
            settings.monitor_scale_prefix,
            {**BUDGETS, **overrides},
            settings.monitor_egress,
        )

    def queue(self, name: str) -> str:
        """The full name of one of ``QUEUES``."""
        return f"{self.prefix}.{name}"


def make_broker(scale: ScaleSettings) -> Any:
    """A Dramatiq RabbitMQ broker (imported here: the default install needs no broker)."""
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    return RabbitmqBroker(url=scale.broker_url)


def make_redis(scale: ScaleSettings) -> Any:
    """A Redis client for the leases' companions: queued flags and rate budgets."""
    import redis

    return redis.Redis.from_url(scale.redis_url)


def dead_letter_counts(scale: ScaleSettings) -> dict[str, int]:
    """Tasks waiting in each queue's dead-letter queue (a queue never declared counts 0)."""
    import pika
    from pika.exceptions import ChannelClosedByBroker

    counts: dict[str, int] = {}
    connection = pika.BlockingConnection(pika.URLParameters(scale.broker_url))
    try:
        for name in QUEUES:
            channel = connection.channel()
            try:
                declared = channel.queue_declare(f"{scale.queue(name)}.XQ", passive=True)
                counts[name] = int(declared.method.message_count)
            except ChannelClosedByBroker:
                counts[name] = 0  # not declared yet: nothing ever failed there
            else:
                channel.close()
    finally:
        connection.close()
    return counts
