"""Web workplace server time at scale: the queue and the case page (target p95 < 150 ms).

    .venv/bin/python -m bench.web --url postgresql+psycopg://postgres@127.0.0.1:5432/bench_web

Seeds 1,000,000 items and 100,000 cases with ``bench.large_db`` (skipped when the database
already holds them), then gives 200 open cases a reply in a thread (a parent post, siblings,
an assessment with a matched rule, an evidence record), adds a trust-wide DSL and a
one-school moderator with local accounts, and sends in-process requests through the app
(Starlette's TestClient, signed in): the queue, its refreshing rows, the queue filtered by
school, and the case page. Prints p50/p95/max per page in milliseconds and the SQL statements one request sends. The time includes
the test client's own overhead, so it is an upper bound on the server's.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import secrets
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from bench.large_db import NOW, seed
from monitor.config_models import Config
from monitor.constants import OPEN_CASE_STATES
from monitor.storage import tables as t
from monitor.storage.db import make_engine, session_factory, transaction
from monitor.storage.migrate import upgrade
from monitor.web import accounts
from monitor.web.app import create_app

PASSWORD = "bench password for the web"
THREADS = 200
SIBLINGS = 8


def _threads(session: Session, rng: random.Random) -> list[int]:
    """Give ``THREADS`` open cases a reply in a thread; returns their ids."""
    case_ids = list(
        session.scalars(
            select(t.Case.id)
            .where(t.Case.state.in_([s.value for s in OPEN_CASE_STATES]))
            .order_by(t.Case.id)
            .limit(THREADS)
        )
    )
    top = session.scalar(select(func.max(t.Item.id))) or 0
    for case_id in case_ids:
        case = session.get(t.Case, case_id)
        assert case is not None
        picked = [session.get(t.Item, rng.randrange(1, top)) for _ in range(SIBLINGS + 2)]
        items = [i for i in picked if i is not None]
        post, reply, siblings = items[0], items[1], items[2:]
        for child in (reply, *siblings):
            child.parent_id = post.platform_id
            child.root_id = post.platform_id
            child.platform = post.platform  # same platform as its parent (a thread)
        post.kind = "post"
        session.flush()
        case.item_id = reply.id
        case.account_id = reply.account_id
        assessment = session.scalars(
            select(t.Assessment).where(t.Assessment.item_id == reply.id)
        ).one_or_none()
        match = {"rule_id": "abusive.insult", "start": 2, "end": 9, "matched": "typical"}
        if assessment is None:
            session.add(
                t.Assessment(
                    item_id=reply.id,
                    model="original",
                    scores={"toxicity": 0.91},
                    categories=["abusive"],
                    severity="high",
                    matches=[match],
                    assessed_at=NOW,
                    needs_rescore=False,
                )
            )
        else:
            assessment.matches = [match]
            assessment.scores = {"toxicity": 0.91}
        session.add(
            t.Evidence(
                case_id=case.id,
                item_id=reply.id,
                captured_at=NOW,
                captured_by="worker",
                snapshot={"text": reply.text},
                sha256="ab" * 32,
            )
        )
    return case_ids


def prepare(url: str, n_items: int, n_cases: int, reseed: bool) -> list[int]:
    """Seed (once), then the threads and the two members of staff; returns the cases to open."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            have = conn.execute(select(func.count()).select_from(t.Item)).scalar_one()
    except Exception:
        have = 0
    if reseed or have < n_items:
        seed(url, n_items, n_cases, 5, 20)
    upgrade(engine)  # a database seeded before the latest migration gets its indexes
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        if session.scalars(select(t.Staff).where(t.Staff.key == "bench-dsl")).first() is None:
            for key, roles, schools in (
                ("bench-dsl", ["dsl"], []),
                ("bench-mod", ["moderator"], ["s0"]),
            ):
                session.add(
                    t.Staff(
                        key=key,
                        name=key,
                        email=f"{key}@bench.test",
                        roles=roles,
                        schools=schools,
                        active=True,
                        created_at=NOW - timedelta(days=400),
                    )
                )
            session.flush()
            for key in ("bench-dsl", "bench-mod"):
                accounts.set_password(session, key, PASSWORD, now=NOW, with_totp=False)
            _threads(session, random.Random(7))
    with sessions() as session:
        return list(
            session.scalars(
                select(t.Case.id)
                .where(t.Case.item_id.is_not(None), t.Case.title == "bench")
                .order_by(t.Case.id)
                .limit(THREADS)
            )
        )


def _client(url: str, who: str) -> TestClient:
    config = Config.model_validate(
        {"organisation": {"name": "Bench Trust"}, "schools": [{"key": "s0", "name": "School 0"}]}
    )
    engine = make_engine(url)
    client = TestClient(
        create_app(
            engine, config=config, session_secret=secrets.token_urlsafe(16), clock=lambda: NOW
        ),
        base_url="http://127.0.0.1",
    )
    page = client.get("/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None
    signed = client.post(
        "/login",
        data={"csrf": token.group(1), "name": who, "password": PASSWORD, "next": "/queue"},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text[:500]
    return client


def _statements(client: TestClient, path: str) -> int:
    """How many SQL statements one request for ``path`` sends to the database."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        client.get(path)
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    return len(seen)


def _time(client: TestClient, label: str, n: int, get: Callable[[int], str]) -> None:
    statements = _statements(client, get(0))
    times = []
    for i in range(n):
        path = get(i)
        began = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
    times.sort()
    p95 = times[max(0, round(0.95 * len(times)) - 1)]
    print(
        f"{label:<38} n={n:<4} p50 {statistics.median(times):7.1f} ms   "
        f"p95 {p95:7.1f} ms   max {times[-1]:7.1f} ms   {statements} SQL statements"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--reseed", action="store_true")
    args = parser.parse_args()
    # the requests write audit events (sign-in, case views): a throwaway key, never ./data's
    os.environ.setdefault("MONITOR_AUDIT_KEY", secrets.token_hex(32))
    case_ids = prepare(args.url, args.items, args.cases, args.reseed)
    n = args.requests
    for who in ("bench-dsl", "bench-mod"):
        client = _client(args.url, who)
        print(f"-- signed in as {who}")
        client.get("/queue")  # warm up: templates, connection pool
        _time(client, "queue (gravest first, 200 rows)", n, lambda _i: "/queue")
        _time(client, "queue rows (the 15 s refresh)", n, lambda _i: "/queue/rows")
        _time(
            client,
            "queue filtered: school s0, abusive",
            n,
            lambda _i: "/queue?school=s0&category=abusive",
        )
        if who == "bench-dsl":
            _time(
                client,
                "case page (thread, scores, evidence)",
                n,
                lambda i: f"/cases/{case_ids[i % len(case_ids)]}",
            )


if __name__ == "__main__":
    main()
