"""Exactly once under SIGKILL: the real worker (``monitor worker``, every job running: polling,
assessment, delivery, publishing, the reply watch) is killed at random moments at least 20 times
while 50 approved posts fall due; afterwards each is on Mastodon exactly once, and a cancelled
one never (cancelled while the worker runs, after the others were approved)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import IO

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor import posts
from monitor.classify.checkpoint import basic_vocab, build_random_bert
from monitor.clock import utcnow
from monitor.config import load_config
from monitor.config_models import DEFAULT_THRESHOLDS
from monitor.rules.posting import DraftContent
from monitor.storage import tables as t
from monitor.storage.db import transaction
from tests.connectors.harness_mastodon import (  # noqa: F401 - fixture
    SCHOOL,
    TOKENS,
    MastodonHarness,
    mastodon_harness_fixture,
)
from tests.posts.posts_support import synced

KILLS = 20
POSTS = 50
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
pytestmark = [pytest.mark.peer, pytest.mark.slow, pytest.mark.timeout(900)]


def write_config(tmp_path: Path, base_url: str) -> Path:
    # the worker's classifier: the tiny test checkpoint (built here, nothing downloads); with
    # no label's threshold set its scores raise nothing, so every post's checks pass
    folder = tmp_path / "tiny-bert"
    folder.mkdir()
    checkpoint = build_random_bert(folder, vocab=basic_vocab(["news", "school"]))
    config: dict[str, object] = {
        "organisation": {"name": "Crash Test Trust"},
        "schools": [{"key": "oakwood", "name": "Oakwood Academy"}],
        "staff": [
            {"id": "comms", "name": "Cat Comms", "roles": ["comms"], "schools": ["oakwood"]},
            {"id": "head", "name": "Amy Head", "roles": ["principal"], "schools": ["oakwood"]},
        ],
        "accounts": [
            {
                "key": "oakwood-mastodon",
                "platform": "mastodon",
                "handle": SCHOOL,
                "school": "oakwood",
                "admins": ["comms", "head"],
                "approved_by": "head",
                "options": {"api_base_url": base_url, "request_timeout": 5},
                "credentials": {"access_token": {"env": "CRASH_MASTODON_TOKEN"}},
            }
        ],
    }
    config["classifier"] = {
        "checkpoint": str(checkpoint),
        "huggingface_config_path": str(folder),
        "precision": "fp32",
        "thresholds": dict.fromkeys(DEFAULT_THRESHOLDS),
        "concern": {"enabled": False},
    }
    config["worker"] = {"publish_every": 0.5}
    config["posting"] = {"reply_poll_interval": "2s"}
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _launch(stdin: IO[str], stdout: IO[str]) -> int:
    """Ask the zygote for a new worker process; its pid."""
    stdin.write("go\n")
    stdin.flush()
    while True:
        line = stdout.readline()
        assert line, "the zygote died: see worker.log"
        if line.startswith("pid "):
            return int(line.split()[1])


def _attempts(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return sum(session.scalars(select(t.Publication.attempts)))


def _published(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return len(
            session.scalars(select(t.Publication.id).where(t.Publication.state == posts.DONE)).all()
        )


def _wait_before_kill(
    sessions: sessionmaker[Session], kills: int, rng: random.Random, deadline: float
) -> None:
    """Half the kills land during start-up, half mid-publication; then let the rest finish."""
    if kills < KILLS and kills % 2 == 0:
        # during start-up: loading the configuration, taking the lead, the first jobs
        time.sleep(rng.uniform(0.2, 3.0))
    elif kills < KILLS:
        # while publishing: once this worker has started an attempt, a moment later
        before = _attempts(sessions)
        while _attempts(sessions) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 2.5))
    else:
        while _published(sessions) < POSTS and time.monotonic() < deadline:
            time.sleep(0.2)


def test_sigkill_never_doubles_or_resurrects_a_post(
    sessions: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    mastodon_harness: MastodonHarness,
) -> None:
    h = mastodon_harness
    path = write_config(tmp_path, h.server.base_url)
    cfg = load_config(path, environ={"CRASH_MASTODON_TOKEN": TOKENS[SCHOOL]}).config
    start = utcnow()
    checker = synced(sessions, cfg, start)
    rng = random.Random(17)
    texts: dict[int, str] = {}
    with transaction(sessions) as session:
        for number in range(POSTS + 1):
            text = f"News item {number}: the school notice board."
            parts = (text, f"More about item {number}.") if number % 5 == 0 else (text,)
            content = DraftContent(
                parts,
                targets=("oakwood-mastodon",),
                # due over about 20 seconds, while the kills go on
                publish_at=start + timedelta(seconds=1 + number * 0.4)
                if number < POSTS
                else start + timedelta(minutes=5),
            )
            draft = posts.create_draft(
                session, checker, school="oakwood", staff_id="comms", content=content, now=start
            )
            posts.approve(session, checker, draft.id, staff_id="head", now=start)
            texts[draft.id] = text
        cancelled = draft.id  # the last one is cancelled while the worker runs, before it is due
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "CRASH_MASTODON_TOKEN": TOKENS[SCHOOL],
        "PYTHONPATH": str(REPO),
        "MONITOR_CONFIG": str(path),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    # every status takes a while, so kills land between the claim and the record of the outcome
    h._add_rule(
        {
            "match": {"methods": ["POST"], "path": "/api/v1/statuses"},
            "effect": {"type": "latency", "delay_ms": 500},
            "count": 10_000,
        }
    )
    log = (tmp_path / "worker.log").open("ab")
    zygote = subprocess.Popen(
        [sys.executable, str(HERE / "worker_zygote.py"), str(path)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert zygote.stdin is not None and zygote.stdout is not None

    def launch() -> int:
        assert zygote.stdin is not None and zygote.stdout is not None
        return _launch(zygote.stdin, zygote.stdout)

    kills = interrupted = 0
    deadline = time.monotonic() + 400
    try:
        while kills < KILLS or _published(sessions) < POSTS:
            assert time.monotonic() < deadline, f"{_published(sessions)} published"
            pid = launch()
            _wait_before_kill(sessions, kills, rng, deadline)
            os.kill(pid, signal.SIGKILL)
            while Path(f"/proc/{pid}").exists():  # dead and reaped: its locks are gone
                time.sleep(0.01)
            with sessions() as session:
                # the kill left a post half done: claimed, the platform maybe called, unrecorded
                interrupted += bool(
                    session.scalars(
                        select(t.Publication.id).where(t.Publication.state == posts.PUBLISHING)
                    ).first()
                )
            kills += 1
            if kills == 3:
                with transaction(sessions) as session:
                    posts.cancel(
                        session,
                        cfg,
                        cancelled,
                        staff_id="head",
                        reason="changed our mind",
                        now=utcnow(),
                    )
    finally:
        zygote.stdin.close()
        zygote.kill()
        zygote.wait(timeout=30)
        log.close()
    api = h.client(SCHOOL)
    me = h.account_id(SCHOOL)
    statuses = []
    page = api.account_statuses(me, limit=40)
    while page:
        statuses.extend(page)
        page = api.fetch_next(page)
    firsts = Counter(s["content"] for s in statuses if s["in_reply_to_id"] is None)
    for draft_id, text in texts.items():
        expected = 0 if draft_id == cancelled else 1
        assert firsts[f"<p>{text}</p>"] == expected, (draft_id, text)
    replies = [s for s in statuses if s["in_reply_to_id"] is not None]
    assert len(replies) == len({s["content"] for s in replies}) == POSTS // 5  # 0, 5, ..., 45
    with sessions() as session:
        states = Counter(session.scalars(select(t.Publication.state)))
        retried = len(
            session.scalars(select(t.Publication.id).where(t.Publication.attempts > 1)).all()
        )
    assert states == {posts.DONE: POSTS, posts.PUB_CANCELLED: 1}
    assert kills >= KILLS
    # the kills must have landed mid-publication for the test to mean anything
    assert interrupted >= 5 and retried >= 1
    print(
        f"kills={kills} statuses={len(statuses)} kills mid-publication={interrupted} "
        f"publications resumed after a kill={retried}"
    )
