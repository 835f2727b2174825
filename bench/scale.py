"""The scaled mode's throughput: polls per minute with 1, 2, 4 and 8 workers, and scoring
with 1 and 2 workers (one torch thread each), on the real RabbitMQ and Redis.

    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/DB .venv/bin/python bench/scale.py \
        [--accounts 400] [--workers 1,2,4,8] [--window 40] [--latency 0.2] \
        [--score-workers 1,2] [--score-items 300] [--skip-polling] [--skip-scoring]

The database is emptied first. Polling: ``--accounts`` accounts on the local reddit
(tests/servers/reddit_server.py), every request answered after ``--latency`` seconds; a leader
enqueues polls, N ``monitor worker --scale --threads 1`` processes poll; the polls counted are
the leases taken within ``--window`` seconds after the workers are up. The target is
N workers >= 0.8 x N x one worker's rate. Scoring: ``--score-items`` comments waiting on 10
accounts, scored by the bert-base-shaped model of bench/classify.py (random weights, the
same cost), rules and model, by 1 then 2 workers; the rate is the comments assessed per
second from the first assessment to the last.
"""

from __future__ import annotations

import argparse
import json
import os
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
        fleet = Fleet(server, 10)
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
            first: tuple[float, int] | None = None
            deadline = time.monotonic() + args.score_timeout
            while time.monotonic() < deadline:
                with sessions() as session:
                    done = session.scalar(select(func.count()).select_from(t.Assessment)) or 0
                    items = (
                        session.scalar(
                            select(func.count()).select_from(t.Item).where(t.Item.is_own.is_(False))
                        )
                        or 0
                    )
                now = time.monotonic()
                if first is None and done:
                    first = (now, done)
                if items >= args.score_items and done >= items:
                    break
                time.sleep(0.5)
            else:
                raise SystemExit(f"scoring with {n} worker(s) did not finish")
            assert first is not None
            rates[n] = (done - first[1]) / max(now - first[0], 1e-6)
            print(f"scoring: {n} worker(s): {rates[n]:.1f} comments per second", flush=True)
        finally:
            stop(workers)
            leader.ensure_dead()
            server.stop()
            clean_namespace(prefix)
            engine.dispose()
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=400)
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--window", type=float, default=40.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--score-workers", default="1,2")
    parser.add_argument("--score-items", type=int, default=300)
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
