"""A task that keeps failing goes to its queue's dead-letter queue, and IT hears of it once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from monitor.clock import utcnow
from monitor.constants import AlertChannel
from monitor.directory import Directory
from monitor.jobhealth import short_error
from monitor.outbox import enqueue
from monitor.rules.delivery import IT_ROLES, reachable
from monitor.rules.jobs import JOB_FAILING
from monitor.storage.db import transaction

log = logging.getLogger(__name__)


def tell_it(
    sessions: sessionmaker[Session],
    directory: Callable[[Session, datetime], Directory],
    channels: frozenset[AlertChannel],
    *,
    actor: str,
    error: str,
    now: datetime,
) -> int:
    """One notice to IT per task kind and day, however many of its messages fail."""
    added = 0
    with transaction(sessions) as session:
        for recipient in reachable(
            directory(session, now), IT_ROLES, None, channels, one_each=True
        ):
            key = f"dead_letter:{actor}:{now.date().isoformat()}"
            added += enqueue(
                session,
                key=f"{key}:{recipient.channel.value}:{recipient.target}"[:200],
                channel=recipient.channel,
                target=recipient.target,
                kind=JOB_FAILING,
                now=now,
                urgent=True,
                payload={
                    "notice": True,
                    "subject": f"Monitor: {actor} tasks are failing (dead-letter queue)",
                    "text": (
                        f"A {actor} task failed on every retry and was put in the dead-letter "
                        f"queue: {error}. `monitor status` shows the queue; the workers' log "
                        "has the traceback."
                    ),
                },
            )
    return added


def middleware(on_dead: Callable[[str, str], None]) -> Any:
    """A Dramatiq middleware calling ``on_dead(actor, error)`` for each message given up."""
    from dramatiq import Middleware

    errors: dict[str, str] = {}  # message id -> its last error, until it is given up
    guard = threading.Lock()

    class DeadLetters(Middleware):
        def after_process_message(
            self,
            broker: Any,  # noqa: ARG002 (Dramatiq's middleware signature)
            message: Any,
            *,
            result: Any = None,  # noqa: ARG002 (Dramatiq's middleware signature)
            exception: Any = None,
        ) -> None:
            with guard:  # the last error of a message, kept while it may still be retried
                if exception is None:
                    errors.pop(message.message_id, None)
                else:
                    errors[message.message_id] = short_error(exception)

        def after_nack(self, _broker: Any, message: Any) -> None:
            with guard:
                text = errors.pop(message.message_id, "see the log")
            log.error("task %s given up after its retries: dead-lettered", message.actor_name)
            try:
                on_dead(message.actor_name, text)
            except Exception:
                log.exception("could not tell IT of the dead-lettered %s", message.actor_name)

    return DeadLetters()


def notifier(
    sessions: sessionmaker[Session],
    directory: Callable[[Session, datetime], Directory],
    channels: frozenset[AlertChannel],
    nudge: Callable[[str], None],
) -> Callable[[str, str], None]:
    """``on_dead`` for ``middleware``: the notice goes through the outbox, then delivery."""

    def on_dead(actor: str, error: str) -> None:
        if tell_it(sessions, directory, channels, actor=actor, error=error, now=utcnow()):
            nudge("deliver")

    return on_dead
