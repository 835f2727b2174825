"""The scaled mode's throughput: polls per minute with 1, 2, 4 and 8 workers, and scoring
with 1 and 2 workers (one torch thread each), on the real RabbitMQ and Redis.

    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/DB .venv/bin/python bench/scale.py \
        [--accounts 400] [--workers 1,2,4,8] [--window 40] [--latency 0.2] \
        [--score-workers 1,2] [--score-items 1000] [--score-window 90] \
        [--skip-polling] [--skip-scoring]

The database is emptied first. Polling: ``--accounts`` accounts on the local reddit
(tests/servers/reddit_server.py), every request answered after ``--latency`` seconds; a leader
enqueues polls, N ``monitor worker --scale --threads 1`` processes poll; the polls counted are
the leases taken within ``--window`` seconds after the workers are up. The target is
N workers >= 0.8 x N x one worker's rate. Scoring: ``--score-items`` comments waiting,
100 on each account (at least 10 accounts, so each first poll stores its page), scored by
the bert-base-shaped model of bench/classify.py (random weights, the same cost), rules and
model, by 1 then 2 workers (one torch thread each, ``--threads 2``, one batch scored at a
time per worker); the rate is the steady state: the comments assessed per second from the
moment every worker has logged its model loaded and every comment is stored, for
``--score-window`` seconds or until fewer comments wait than the workers may hold
prefetched (the tail, where a worker idles, is left out).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import func, select  # noqa: E402

from monitor.scale.lease import TRACE_ENV  # noqa: E402
from monitor.scale.tasks import BATCH  # noqa: E402
from monitor.storage import tables as t  # noqa: E402
from monitor.storage.db import make_engine, session_factory  # noqa: E402
from monitor.storage.migrate import upgrade  # noqa: E402
from tests.conftest import reset_postgres_schema  # noqa: E402
from tests.scale.fleet import (  # noqa: E402
    Fleet,
    Proc,
    clean_namespace,
    new_prefix,
    scale_env,
    services_up,
)
from tests.servers.reddit_server import RedditServer  # noqa: E402

READY = "scaled worker consuming"
MODEL_LOADED = re.compile(r"toxicity model \S+ loaded")
PREFETCH = 4  # messages a --threads 2 worker may hold (Dramatiq: twice its threads)
TIMINGS = {
    "assess_every": "2s",
    "deliver_every": "5s",
    "actions_every": "30s",
    "verify_every": "300s",
    "compliance_every": "300s",
}


def slow_server(latency: float) -> RedditServer:
    """The local reddit, answering every request ``latency`` seconds late."""
    server = RedditServer(ratelimit_limit=10**9)
    record = server.record

    def late(*args: Any) -> None:
        time.sleep(latency)
        record(*args)

    server.record = late  # type: ignore[method-assign]
    return server.start()


def fresh_database(url: str) -> Any:
    engine = make_engine(url)
    reset_postgres_schema(engine)
    upgrade(engine)
    return engine


def start_workers(n: int, env: dict[str, str], folder: Path, threads: int) -> list[Proc]:
    workers = [
        Proc(["worker", "--scale", "--threads", str(threads)], env, folder / f"w{n}-{i}.log")
        for i in range(n)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.wait_for(READY, timeout=300)
    return workers


def stop(procs: list[Proc]) -> None:
    for proc in procs:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.terminate(timeout=120)


def polls_between(trace: Path, start: float, end: float) -> int:
    count = 0
    for line in trace.read_text().splitlines():
        event = json.loads(line)
        if event["e"] == "take" and event["name"].startswith("poll:") and start <= event["t"] < end:
            count += 1
    return count


def bench_polling(args: argparse.Namespace, url: str, folder: Path) -> dict[int, float]:
    fresh_database(url)
    server = slow_server(args.latency)
    fleet = Fleet(server, args.accounts)
    config = fleet.write_config(folder / "poll.yaml", poll_interval="10s", worker=TIMINGS)
    trace = folder / "poll-leases.jsonl"
    prefix = new_prefix()
    env = scale_env(
        {
            **os.environ,
            **fleet.env(),
            "MONITOR_CONFIG": str(config),
            "DATABASE_URL": url,
            TRACE_ENV: str(trace),
        },
        prefix,
    )
    leader = Proc(["worker"], env, folder / "poll-leader.log")
    rates: dict[int, float] = {}
    try:
        leader.start()
        leader.wait_for("now leads", timeout=300)
        for n in args.workers:
            workers = start_workers(n, env, folder, threads=1)
            try:
                time.sleep(args.warmup)
                start = time.time()
                time.sleep(args.window)
                end = time.time()
            finally:
                stop(workers)
            rates[n] = polls_between(trace, start, end) * 60.0 / (end - start)
            print(f"polling: {n} worker(s): {rates[n]:.0f} accounts polled per minute", flush=True)
    finally:
        leader.ensure_dead()
        server.stop()
        clean_namespace(prefix)
    return rates


def bench_scoring(args: argparse.Namespace, url: str, folder: Path) -> dict[int, float]:
    from bench.classify import build_checkpoint, make_comments

    ckpt, model_folder = build_checkpoint(False)
    classifier = {
        "checkpoint": str(ckpt),
        "huggingface_config_path": str(model_folder),
        "concern": {"enabled": False},
    }
    rates: dict[int, float] = {}
    for n in args.score_workers:
        engine = fresh_database(url)
        sessions = session_factory(engine)
        server = RedditServer(ratelimit_limit=10**9).start()
        fleet = Fleet(server, max(10, args.score_items // 100))  # one page per first poll
        for i, text in enumerate(make_comments(args.score_items, seed=n)):
            fleet.comment(fleet.key(i % fleet.count), text)
        config = fleet.write_config(
            folder / f"score{n}.yaml", poll_interval="5s", worker=TIMINGS, classifier=classifier
        )
        prefix = new_prefix()
        env = scale_env(
            {**os.environ, **fleet.env(), "MONITOR_CONFIG": str(config), "DATABASE_URL": url},
            prefix,
        )
        leader = Proc(["worker"], env, folder / f"score{n}-leader.log")
        workers: list[Proc] = []
        try:
            leader.start()
            leader.wait_for("now leads", timeout=300)
            workers = start_workers(n, env, folder, threads=2)
            counts = _Counts(sessions)
            deadline = time.monotonic() + args.score_timeout
            while counts.now()[2] < args.score_items or not all(
                MODEL_LOADED.search(w.since_start()) for w in workers
            ):
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"scoring with {n} worker(s): a model never loaded or comments never stored"
                    )
                time.sleep(0.2)
            # timed from one commit of scores to another: the counts move a batch at a time
            start, done_at_start, _ = counts.changed(counts.now()[1], deadline)
            end, done = start, done_at_start
            tail = n * PREFETCH * BATCH
            while True:
                at, now_done, _ = counts.now()
                if now_done != done:
                    end, done = at, now_done
                if at - start >= args.score_window or args.score_items - done <= tail:
                    break
                if at > deadline:
                    raise SystemExit(f"scoring with {n} worker(s) stalled")
                time.sleep(0.1)
            short = args.score_items - done <= tail and end - start < args.score_window / 2
            rate = _scoring_rate(n, (start, end), (done_at_start, done), short=short)
            if rate is not None:
                rates[n] = rate
        finally:
            stop(workers)
            leader.ensure_dead()
            server.stop()
            clean_namespace(prefix)
            engine.dispose()
    return rates


def _scoring_rate(
    n: int, window: tuple[float, float], done: tuple[int, int], *, short: bool
) -> float | None:
    """Print and return the comments scored per second in ``window`` (None: nothing to time)."""
    (start, end), (before, after) = window, done
    if end <= start:  # every comment was scored before the models were all loaded
        print(f"scoring: {n} worker(s): nothing left to time; raise --score-items", flush=True)
        return None
    if short:
        print(f"scoring: {n} worker(s): short window; raise --score-items", flush=True)
    rate = (after - before) / (end - start)
    print(
        f"scoring: {n} worker(s): {after - before} comments in {end - start:.0f} s"
        f" after every model loaded ({before} scored before)",
        flush=True,
    )
    print(f"scoring: {n} worker(s): {rate:.1f} comments per second", flush=True)
    return rate


class _Counts:
    """The comments stored and assessed, read from the database."""

    def __init__(self, sessions: Any) -> None:
        self._sessions = sessions

    def now(self) -> tuple[float, int, int]:
        """(monotonic time, assessed, stored)."""
        with self._sessions() as session:
            done = session.scalar(select(func.count()).select_from(t.Assessment)) or 0
            items = (
                session.scalar(
                    select(func.count()).select_from(t.Item).where(t.Item.is_own.is_(False))
                )
                or 0
            )
        return time.monotonic(), done, items

    def changed(self, done: int, deadline: float) -> tuple[float, int, int]:
        """The first reading after the assessed count moves from ``done``."""
        while time.monotonic() < deadline:
            reading = self.now()
            if reading[1] != done:
                return reading
            time.sleep(0.1)
        raise SystemExit("no comment was scored")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=400)
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--window", type=float, default=40.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--score-workers", default="1,2")
    parser.add_argument("--score-items", type=int, default=1000)
    parser.add_argument("--score-window", type=float, default=90.0)
    parser.add_argument("--score-timeout", type=float, default=900.0)
    parser.add_argument("--skip-polling", action="store_true")
    parser.add_argument("--skip-scoring", action="store_true")
    args = parser.parse_args()
    args.workers = [int(n) for n in args.workers.split(",")]
    args.score_workers = [int(n) for n in args.score_workers.split(",")]
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql"):
        raise SystemExit("DATABASE_URL must name a PostgreSQL database (it is emptied)")
    if not services_up():
        raise SystemExit("RabbitMQ (127.0.0.1:5672) and Redis (127.0.0.1:6379) must run")
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        folder = Path(tmp)
        if not args.skip_polling:
            rates = bench_polling(args, url, folder)
            one = rates.get(1)
            if one:
                for n, rate in rates.items():
                    print(f"polling: {n} worker(s): {rate / (n * one):.2f} x N x one worker's rate")
        if not args.skip_scoring:
            bench_scoring(args, url, folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
