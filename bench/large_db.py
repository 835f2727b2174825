"""Query times on a large database (default 1,000,000 items, 100,000 cases).

    .venv/bin/python -m bench.large_db --url sqlite:////tmp/bench-large.db
    .venv/bin/python -m bench.large_db --url postgresql+psycopg://postgres@127.0.0.1:5432/bench

Seeds the database once (skipped when it already holds the items), then prints the time of
the moderators' queue (target < 100 ms) and of the digest figures (target < 5 s), for the
trust and for one school, best and worst of three runs each.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, text

from monitor.digest.figures import compute
from monitor.digest.render import render
from monitor.queue import moderation_queue
from monitor.storage import tables as t
from monitor.storage.db import make_engine, session_factory, transaction
from monitor.storage.migrate import upgrade

WEEK = "2026-W47"
NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
SPAN = timedelta(weeks=52)
CATEGORIES = [
    "abusive",
    "needs_response",
    "negative_mention",
    "media_enquiry",
    "personal_data",
    "safeguarding",
    "threat",
    "monitoring_gap",
    "two_admins",
]
BATCH = 10_000


def seed(url: str, n_items: int, n_cases: int, schools: int, accounts: int) -> None:
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    rng = random.Random(1)
    sessions = session_factory(engine)
    start = NOW - SPAN
    with transaction(sessions) as session:
        for s in range(schools):
            session.add(
                t.School(
                    key=f"s{s}",
                    name=f"School {s}",
                    timezone="Europe/London",
                    settings={},
                    created_at=start,
                )
            )
        session.flush()
        school_ids = [r.id for r in session.scalars(select(t.School).order_by(t.School.id))]
        for a in range(accounts):
            session.add(
                t.Account(
                    key=f"a{a}",
                    school_id=school_ids[a % schools],
                    platform=["bluesky", "mastodon", "reddit"][a % 3],
                    handle=f"acct{a}",
                    poll_interval_s=300,
                    gap_limit_s=1800,
                    options={},
                    credential_refs={},
                    created_at=start,
                )
            )
        session.flush()
        account_rows = list(session.scalars(select(t.Account).order_by(t.Account.id)))
    seconds = int(SPAN.total_seconds())
    if engine.dialect.name == "postgresql":
        _seed_postgres(engine, n_items, n_cases, start, seconds)
        return
    with engine.begin() as conn:
        for first in range(0, n_items, BATCH):
            items: list[dict[str, Any]] = []
            for n in range(first, min(n_items, first + BATCH)):
                account = account_rows[rng.randrange(accounts)]
                seen = start + timedelta(seconds=rng.randrange(seconds))
                created = seen - timedelta(seconds=rng.randrange(3600))
                hidden = (
                    created + timedelta(seconds=rng.randrange(86400))
                    if rng.random() < 0.01
                    else None
                )
                items.append(
                    {
                        "platform": account.platform,
                        "platform_id": f"p{n}",
                        "account_id": account.id,
                        "stream": "replies",
                        "kind": "reply",
                        "url": f"https://example.test/{n}",
                        "author_id": f"u{n % 5000}",
                        "author_handle": f"user{n % 5000}.example",
                        "text": "a typical comment of a realistic length " * 3,
                        "created_at": created,
                        "seen_at": seen,
                        "is_own": False,
                        "engagement": {},
                        "raw": {"id": n, "note": "raw platform payload"},
                        "visibility": "hidden" if hidden else "visible",
                        "hidden_at": hidden,
                        "flagged": False,
                    }
                )
            ids = conn.execute(insert(t.Item).returning(t.Item.id, t.Item.seen_at), items).all()
            conn.execute(
                insert(t.Assessment),
                [
                    {
                        "item_id": i,
                        "model": None if rng.random() < 0.1 else "original",
                        "scores": {},
                        "categories": [],
                        "severity": "none",
                        "matches": [],
                        "assessed_at": s,
                        "needs_rescore": False,
                    }
                    for i, s in ids
                    if rng.random() < 0.95
                ],
            )
            print(f"items {first + len(items):,}", end="\r", flush=True)
        print()
        for first in range(0, n_cases, BATCH):
            cases: list[dict[str, Any]] = []
            for n in range(first, min(n_cases, first + BATCH)):
                account = account_rows[rng.randrange(accounts)]
                opened = start + timedelta(seconds=rng.randrange(seconds))
                due = opened + timedelta(hours=rng.randint(1, 72)) if rng.random() < 0.6 else None
                responded = None
                closed = None
                state = rng.choice(["new", "acknowledged", "escalated", "responded", "closed"])
                if state == "responded" and due:
                    responded = due + timedelta(hours=rng.randint(-20, 10))
                if state == "closed":
                    closed = opened + timedelta(hours=rng.randint(1, 200))
                cases.append(
                    {
                        "dedupe_key": f"bench:{n}",
                        "item_id": None,
                        "account_id": account.id,
                        "school_id": account.school_id,
                        "category": rng.choice(CATEGORIES),
                        "severity": "medium",
                        "state": state,
                        "restricted": False,
                        "title": "bench",
                        "opened_at": opened,
                        "due_at": due,
                        "reminded_at": None,
                        "breached_at": due if due and not responded else None,
                        "responded_at": responded,
                        "closed_at": closed,
                        "cannot_hide": False,
                        "police_step": None,
                        "details": {"admins": ["x"]},
                    }
                )
            conn.execute(insert(t.Case), cases)
        print(f"cases {n_cases:,}")
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))


def _seed_postgres(engine: Any, n_items: int, n_cases: int, start: datetime, seconds: int) -> None:
    """The same mix generated inside PostgreSQL (client-side inserts take far longer)."""
    params = {"n": n_items, "c": n_cases, "start": start, "secs": seconds}
    statements = [
        """
        INSERT INTO items (platform, platform_id, account_id, stream, kind, url, author_id,
            author_handle, text, created_at, seen_at, is_own, engagement, raw, visibility,
            hidden_at, flagged)
        SELECT a.platform, 'p' || x.g, a.id, 'replies', 'reply', 'https://example.test/' || x.g,
            'u' || (x.g % 5000), 'user' || (x.g % 5000) || '.example',
            repeat('a typical comment of a realistic length ', 3),
            x.seen - x.r1 * interval '1 hour', x.seen, false, '{}'::jsonb,
            jsonb_build_object('id', x.g, 'note', 'raw platform payload'),
            CASE WHEN x.r2 < 0.01 THEN 'hidden' ELSE 'visible' END,
            CASE WHEN x.r2 < 0.01 THEN x.seen + x.r1 * interval '1 day' END, false
        FROM (SELECT g, CAST(:start AS timestamptz) + random() * :secs * interval '1 second' AS seen,
                     random() AS r1, random() AS r2
              FROM generate_series(1, :n) AS g) AS x
        JOIN (SELECT id, platform, row_number() OVER (ORDER BY id) - 1 AS k FROM accounts) AS a
          ON a.k = x.g % (SELECT count(*) FROM accounts)
        """,
        """
        INSERT INTO assessments (item_id, model, scores, categories, severity, matches,
            assessed_at, needs_rescore)
        SELECT id, CASE WHEN random() < 0.1 THEN NULL ELSE 'original' END, '{}', '[]', 'none',
            '[]', seen_at, false
        FROM items WHERE random() < 0.95
        """,
        """
        INSERT INTO cases (dedupe_key, account_id, school_id, category, severity, state,
            restricted, title, opened_at, due_at, breached_at, responded_at, closed_at,
            cannot_hide, details)
        SELECT 'bench:' || x.g, a.id, a.school_id,
            (ARRAY['abusive','needs_response','negative_mention','media_enquiry','personal_data',
                   'safeguarding','threat','monitoring_gap','two_admins'])[1 + floor(x.r1 * 9)::int],
            'medium', x.state, false, 'bench', x.opened,
            CASE WHEN x.r2 < 0.6 THEN x.opened + (1 + floor(x.r3 * 72)) * interval '1 hour' END,
            CASE WHEN x.r2 < 0.6 AND x.state <> 'responded'
                 THEN x.opened + (1 + floor(x.r3 * 72)) * interval '1 hour' END,
            CASE WHEN x.r2 < 0.6 AND x.state = 'responded'
                 THEN x.opened + (1 + floor(x.r3 * 72)) * interval '1 hour'
                      + (x.r1 * 30 - 20) * interval '1 hour' END,
            CASE WHEN x.state = 'closed' THEN x.opened + x.r3 * interval '200 hours' END,
            false, '{"admins": ["x"]}'::jsonb
        FROM (SELECT g, CAST(:start AS timestamptz) + random() * :secs * interval '1 second' AS opened,
                     random() AS r1, random() AS r2, random() AS r3,
                     (ARRAY['new','acknowledged','escalated','responded','closed'])
                         [1 + floor(random() * 5)::int] AS state
              FROM generate_series(1, :c) AS g) AS x
        JOIN (SELECT id, school_id, row_number() OVER (ORDER BY id) - 1 AS k FROM accounts) AS a
          ON a.k = x.g % (SELECT count(*) FROM accounts)
        """,
    ]
    with engine.begin() as conn:
        for statement in statements:
            began = time.perf_counter()
            conn.execute(text(statement), params)
            print(f"{statement.split()[2]}: {time.perf_counter() - began:.1f}s")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--schools", type=int, default=5)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--reseed", action="store_true")
    args = parser.parse_args()
    engine = make_engine(args.url)
    try:
        with engine.connect() as conn:
            have = conn.execute(select(func.count()).select_from(t.Item)).scalar_one()
    except Exception:  # no schema yet
        have = 0
    if args.reseed or have < args.items:
        began = time.perf_counter()
        seed(args.url, args.items, args.cases, args.schools, args.accounts)
        print(f"seeded in {time.perf_counter() - began:.1f}s")
    sessions = session_factory(make_engine(args.url))
    report_times(sessions, engine.dialect.name)


def report_times(sessions: Any, dialect: str) -> None:
    """Print the queue and digest timings."""
    for school in (None, "s0"):
        timings = []
        for _ in range(3):
            began = time.perf_counter()
            with sessions() as session:
                rows = moderation_queue(session, school_key=school, limit=50)
            timings.append(time.perf_counter() - began)
        print(
            f"{dialect} moderators' queue ({school or 'trust'}): best {min(timings) * 1000:.1f} ms, "
            f"worst {max(timings) * 1000:.1f} ms for {len(rows)} rows (target < 100 ms)"
        )
    for scope in ("trust", "s0"):
        timings = []
        for _ in range(3):
            began = time.perf_counter()
            with sessions() as session:
                figures = compute(session, week=WEEK, scope=scope, now=NOW)
            timings.append(time.perf_counter() - began)
        began = time.perf_counter()
        render(figures, organisation="Bench Trust")
        rendering = time.perf_counter() - began
        print(
            f"{dialect} digest {scope}: compute best {min(timings):.3f}s "
            f"worst {max(timings):.3f}s; render {rendering:.3f}s; "
            f"{figures.items:,} items, {figures.flagged:,} flagged, "
            f"{figures.responses.due:,} due in the week (target < 5 s)"
        )


if __name__ == "__main__":
    main()
