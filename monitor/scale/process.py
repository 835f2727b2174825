"""``monitor worker --scale``: one process consuming the scaled mode's queues."""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from monitor.config import LoadedConfig
from monitor.context import AppContext
from monitor.jobs.assess import Assessor
from monitor.jobs.poll import ConnectorPool
from monitor.jobs.undelivered import configured_channels
from monitor.scale import dead_letter
from monitor.scale.broker import ScaleSettings, make_broker, make_redis
from monitor.scale.budget import Buckets
from monitor.scale.lease import Leases
from monitor.scale.tasks import Runtime, Tasks, set_runtime
from monitor.service import make_deliver
from monitor.worker import Worker

log = logging.getLogger(__name__)
STOP_TIMEOUT_MS = 600_000  # a drain lets running tasks finish (each commits, then is acked)


def one_torch_thread() -> None:
    """Each worker process scores on one core: as many processes as cores, no oversubscription.

    Set before torch is imported (it is, lazily, with the model), so start-up stays quick.
    """
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def run(
    ctx: AppContext,
    loaded: LoadedConfig,
    assessor: Assessor,
    scale: ScaleSettings,
    *,
    threads: int,
    stop: threading.Event,
) -> None:
    """Consume tasks with ``threads`` threads until ``stop`` is set; then drain and return."""
    from dramatiq import Worker as DramatiqWorker

    from monitor.notify.email import EmailSender
    from monitor.notify.slack import SlackSender

    logging.getLogger("pika").setLevel(logging.WARNING)  # a line per connection otherwise
    settings = ctx.settings
    config = loaded.config
    worker = Worker(
        ctx.sessions,
        config,
        assessor,
        pool=ConnectorPool(config_dir=loaded.path.parent, sessions=ctx.sessions),
        config_dir=loaded.path.parent,
    )
    slack = SlackSender.from_settings(settings) if settings.slack_bot_token else None
    email = EmailSender.from_settings(settings) if settings.smtp_host else None
    broker = make_broker(scale)
    tasks = Tasks.declare(broker, scale)
    redis = make_redis(scale)
    runtime = Runtime(
        worker=worker,
        leases=Leases(ctx.engine, scale.prefix),
        buckets=Buckets(redis, scale.prefix),
        redis=redis,
        scale=scale,
        tasks=tasks,
        deliver=make_deliver(worker, slack=slack, email=email),
    )
    worker.nudge = runtime.nudge
    broker.add_middleware(
        dead_letter.middleware(
            dead_letter.notifier(
                ctx.sessions,
                worker.directory,
                configured_channels(slack=slack, email=email),
                runtime.nudge,
            )
        )
    )
    set_runtime(runtime)
    consumer: Any = DramatiqWorker(broker, worker_threads=threads)
    consumer.start()
    log.info("scaled worker consuming %s.* with %d thread(s)", scale.prefix, threads)
    try:
        stop.wait()
    finally:
        log.info("draining: running tasks finish, the rest stay queued for other workers")
        worker.stopping.set()
        consumer.stop(timeout=STOP_TIMEOUT_MS)
        broker.close()
        worker.close()
        set_runtime(None)
        log.info("scaled worker stopped")
