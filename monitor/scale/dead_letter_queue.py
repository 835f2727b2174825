"""The dead-letter queues of the scaled mode: what waits there, and putting it back or away.

A task that failed on every retry waits in its queue's dead-letter queue (``<queue>.XQ``,
kept by RabbitMQ for Dramatiq's 7 days), and IT has been told (``dead_letter.py``). Once the
cause is fixed, ``requeue`` puts each task back on its queue with its retry count reset, so
it gets the whole retry schedule again; ``purge`` drops them. Tasks are moved one at a time,
published (with the broker's confirmation) before they are taken off the dead-letter queue,
so a crash part-way leaves a task in both queues at worst, never in neither: the task
functions are idempotent, a duplicate costs a second run.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from monitor.logs import SecretRedactor, secrets_from_environment
from monitor.scale.broker import QUEUES, ScaleSettings

# what the retries and delays wrote into a task's options; a requeued task starts afresh
RESET_OPTIONS = frozenset({"retries", "traceback", "requeue_timestamp", "eta"})
PEEK_LIMIT = 100  # tasks read to summarise a queue (they stay where they are)


class UnknownQueue(ValueError):
    """Not one of the scaled mode's queues."""


@dataclass(frozen=True)
class DeadLetters:
    """What waits in one queue's dead-letter queue."""

    queue: str  # one of QUEUES
    count: int
    actors: dict[str, int]  # task kind -> how many, among the first PEEK_LIMIT
    last_error: str | None  # the final line of the first task's last traceback, redacted


def _checked(queue: str) -> str:
    if queue not in QUEUES:
        raise UnknownQueue(f"unknown queue {queue!r}: one of {', '.join(QUEUES)}")
    return queue


@contextmanager
def _channel(scale: ScaleSettings) -> Iterator[Any]:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(scale.broker_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()  # basic_publish returns once the broker has the task
        yield channel
    finally:
        connection.close()  # tasks read and not acknowledged go back where they were


def _waiting(channel: Any, name: str) -> int | None:
    """Messages in queue ``name``, or None when it was never declared."""
    from pika.exceptions import ChannelClosedByBroker

    try:
        return int(channel.queue_declare(name, passive=True).method.message_count)
    except ChannelClosedByBroker:
        return None


def _error_line(message: Any) -> str | None:
    text = str(message.options.get("traceback") or "").strip()
    if not text:
        return None
    line = text.splitlines()[-1][:300]
    return SecretRedactor(secrets_from_environment()).redact(line)


def summarise(scale: ScaleSettings, queue: str) -> DeadLetters:
    """Count one queue's dead letters and summarise the first ``PEEK_LIMIT`` (left in place)."""
    from dramatiq import Message

    name = f"{scale.queue(_checked(queue))}.XQ"
    with _channel(scale) as channel:
        count = _waiting(channel, name)
        if not count:
            return DeadLetters(queue, 0, {}, None)
        actors: Counter[str] = Counter()
        error = None
        for _ in range(min(count, PEEK_LIMIT)):
            method, _properties, body = channel.basic_get(name, auto_ack=False)
            if method is None:
                break
            message = Message.decode(body)
            actors[message.actor_name] += 1
            error = error or _error_line(message)
        return DeadLetters(queue, count, dict(actors), error)


def requeue(scale: ScaleSettings, queue: str) -> int:
    """Move every task now in ``queue``'s dead-letter queue back onto ``queue``, retries reset.

    Returns how many were moved. Tasks that fail again meanwhile wait for the next call.
    """
    import pika
    from dramatiq import Message

    target = scale.queue(_checked(queue))
    name = f"{target}.XQ"
    moved = 0
    with _channel(scale) as channel:
        count = _waiting(channel, name) or 0
        if count and _waiting(channel, target) is None:
            raise UnknownQueue(f"queue {target} is not declared: start a worker first")
        for _ in range(count):
            method, _properties, body = channel.basic_get(name, auto_ack=False)
            if method is None:
                break
            message = Message.decode(body)
            options = {k: v for k, v in message.options.items() if k not in RESET_OPTIONS}
            fresh = dataclasses.replace(message, queue_name=target, options=options)
            channel.basic_publish(
                exchange="",
                routing_key=target,
                body=fresh.encode(),
                properties=pika.BasicProperties(
                    delivery_mode=2, priority=options.get("broker_priority")
                ),
                mandatory=True,
            )
            channel.basic_ack(method.delivery_tag)
            moved += 1
    return moved


def purge(scale: ScaleSettings, queue: str) -> int:
    """Drop every task in ``queue``'s dead-letter queue; returns how many were dropped."""
    name = f"{scale.queue(_checked(queue))}.XQ"
    with _channel(scale) as channel:
        if _waiting(channel, name) is None:
            return 0
        return int(channel.queue_purge(name).method.message_count)
