"""One account's platform failing (429, 500, timeouts) never slows the healthy accounts' polling."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.classify.pipeline import ClassifierPipeline
from monitor.clock import utcnow
from monitor.config import load_config
from monitor.config_models import Account, Classifier, SecretRef
from monitor.jobs.poll import ConnectorPool
from monitor.scheduler import build_scheduler
from monitor.service import job_specs
from monitor.storage import tables as t
from monitor.worker import Worker
from tests.conftest import EXAMPLE_CONFIG
from tests.connectors.harness_reddit import SCHOOL_PASSWORD, RedditHarness
from tests.servers.reddit_server import RedditServer

pytestmark = [pytest.mark.peer, pytest.mark.slow]
INTERVAL = 1.0
RUN_FOR = 12.0


@pytest.fixture
def two_reddits() -> Iterator[tuple[RedditHarness, RedditHarness]]:
    servers = [RedditServer(ratelimit_limit=1_000_000).start() for _ in range(2)]
    harnesses = (RedditHarness(servers[0]), RedditHarness(servers[1]))
    try:
        yield harnesses
    finally:
        for harness, server in zip(harnesses, servers, strict=True):
            harness.close()
            server.stop()


def account(
    key: str, school: str, harness: RedditHarness, handle: str
) -> tuple[Account, dict[str, str]]:
    harness.server.state.add_user(handle, SCHOOL_PASSWORD)
    ref = harness.account(handle=handle)
    env = {
        f"{key.upper().replace('-', '_')}_{name.upper()}": value
        for name, value in ref.credentials.items()
    }
    return (
        Account(
            key=key,
            platform=ref.platform,
            handle=ref.handle,
            school=school,
            admins=["cjones", "dmurphy"],
            poll_interval=INTERVAL,
            watch_mentions=False,
            options=dict(ref.options),
            credentials={
                name: SecretRef(env=f"{key.upper().replace('-', '_')}_{name.upper()}")
                for name in ref.credentials
            },
        ),
        env,
    )


def test_healthy_accounts_keep_their_interval(
    sessions: sessionmaker[Session], two_reddits: tuple[RedditHarness, RedditHarness]
) -> None:
    faulty, healthy = two_reddits
    bad, bad_env = account("faulty-reddit", "oakfield", faulty, "OakfieldPrimary")
    good, good_env = account("healthy-reddit", "riverside", healthy, "RiversideAcademy")
    config = load_config(EXAMPLE_CONFIG, environ={}).config.model_copy(
        update={"accounts": [bad, good]}
    )
    rules_only = Classifier(
        checkpoint="/nonexistent/model.ckpt",
        huggingface_config_path="/nonexistent",
        concern={"enabled": False},  # each model degrades alone: turn both off
    )
    worker = Worker(
        sessions,
        config,
        ClassifierPipeline(rules_only, config.schools),
        pool=ConnectorPool(environ={**bad_env, **good_env}),
    )
    worker.sync(utcnow())
    faulty.own_post("We are closed for snow today")
    healthy.own_post("Open as normal today")
    # the faulty platform rate-limits (Retry-After: 7), then alternates timeouts and server errors
    faulty.fail_next("ratelimit", count=1)
    for kind in ("timeout", "server_error", "timeout", "server_error", "timeout", "server_error"):
        faulty.fail_next(kind, count=3)  # more than praw's own retries
    specs = [s for s in job_specs(worker, slack=None, email=None) if s.id.startswith("poll:")]
    scheduler = build_scheduler(specs, timezone="Europe/London")
    successes: list[datetime] = []
    started = time.monotonic()
    scheduler.start()
    try:
        paused_seen = False
        while time.monotonic() - started < RUN_FOR:
            with sessions() as session:
                rows = {
                    a.key: session.get(t.AccountHealth, a.id)
                    for a in session.scalars(select(t.Account))
                }
            health = rows["healthy-reddit"]
            if (
                health is not None
                and health.last_success_at
                and (not successes or health.last_success_at != successes[-1])
            ):
                successes.append(health.last_success_at)
            bad_now = rows["faulty-reddit"]
            paused_seen |= bad_now is not None and bad_now.paused_until is not None
            time.sleep(0.1)
    finally:
        scheduler.shutdown(wait=True)
        worker.close()
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(successes)]
    assert len(successes) >= RUN_FOR / INTERVAL * 0.7, successes
    assert max(gaps) < INTERVAL * 2.5, (
        gaps
    )  # interval plus jitter, never held up by the faulty account
    with sessions() as session:
        bad_health = session.scalars(
            select(t.AccountHealth).join(t.Account).where(t.Account.key == "faulty-reddit")
        ).one()
        assert bad_health.consecutive_failures >= 2
        assert bad_health.last_error_kind in {"transient", "rate_limited"}
    assert paused_seen  # the 429 paused that account until its retry time
