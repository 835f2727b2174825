"""A known mix of items, cases, staff and audit events for the digest tests (plain records).

The seed is generated from a fixed random seed, kept as plain Python records, and inserted
through the ORM. Tests compute every expected figure from these records on their own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor import audit
from monitor.config_models import Config
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.sync import apply_config

# 2026-W47 is Mon 16 Nov to Mon 23 Nov 2026 (GMT, so the UTC bounds are midnights).
WEEK = "2026-W47"
START = datetime(2026, 11, 16, tzinfo=UTC)
END = datetime(2026, 11, 23, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
TREND_START = START - timedelta(weeks=7)

HOSTILE_SCHOOL = 'Oak <script>alert("x")</script> & <!channel> Academy \u202e'
HOSTILE_HANDLE = "<img src=x onerror=alert(1)>&amp;.bsky.social"
HUGE_HANDLE = "R" * 200  # the column limit (String(200))
SG_TEXT = "ZEBRA-SAFEGUARD-7731 someone at home hurts me"
SG_AUTHOR = "sg-victim-handle-9981"
SG_AUTHOR_NAME = "Quillon Distinctive-Name"
HOSTILE_TEXT = "<script>alert(1)</script> <!channel> & <b>bold</b> @here " + "x" * 20000

CONTENT = [
    "safeguarding",
    "threat",
    "personal_data",
    "abusive",
    "media_enquiry",
    "negative_mention",
    "needs_response",
]
OPEN_STATES = {"new", "acknowledged", "actioned", "escalated"}


def config_dict() -> dict[str, Any]:
    """A trust with two schools, hostile names, SLT in various shapes, four accounts."""
    return {
        "organisation": {
            "name": "Northfield & <Trust>",
            "timezone": "Europe/London",
            "dashboard_url": "https://monitor.example.org/?a=1&b=<2>",
        },
        "schools": [
            {"key": "oak", "name": HOSTILE_SCHOOL},
            {"key": "river", "name": "Riverside Academy"},
        ],
        "staff": [
            {"id": "ceo", "name": "Cara <CEO>", "email": "ceo@trust.example", "roles": ["slt"]},
            {
                "id": "oakhead",
                "name": "Olu Head",
                "email": "head@oak.example",
                "roles": ["principal"],
                "schools": ["oak"],
            },
            {
                "id": "riverslt",
                "name": "Rae Deputy",
                "email": "slt@river.example",
                "roles": ["slt"],
                "schools": ["river"],
            },
            {"id": "noemail", "name": "No Email", "roles": ["slt"]},
            {
                "id": "retired",
                "name": "Retired Slt",
                "email": "retired@trust.example",
                "roles": ["slt"],
                "active": False,
            },
            {
                "id": "comms1",
                "name": "Cam Comms",
                "email": "comms1@oak.example",
                "roles": ["comms", "moderator"],
                "schools": ["oak"],
            },
            {
                "id": "comms2",
                "name": "Dee <b>Comms</b>",
                "email": "comms2@oak.example",
                "roles": ["comms", "moderator"],
                "schools": ["oak"],
            },
            {
                "id": "comms3",
                "name": "Eli Comms",
                "email": "comms3@river.example",
                "roles": ["comms"],
                "schools": ["river"],
            },
            {"id": "leaver-soon", "name": "Lee Soon", "roles": ["comms"], "schools": ["oak"]},
            {"id": "leaver-late", "name": "Lou Later", "roles": ["comms"], "schools": ["oak"]},
            {"id": "leaver-river", "name": "Rio Leaver", "roles": ["comms"], "schools": ["river"]},
            {"id": "leaver-overdue", "name": "Ola Overdue", "roles": ["comms"]},
            {"id": "gone-oak", "name": "Gwen Gone", "roles": ["comms"], "schools": ["oak"]},
            {"id": "gone-early", "name": "Gus Early", "roles": ["comms"], "schools": ["oak"]},
        ],
        "accounts": [
            {
                "key": "oak-bsky",
                "platform": "bluesky",
                "handle": HOSTILE_HANDLE,
                "school": "oak",
                "admins": ["comms1", "comms2"],
                "approved_by": "oakhead",
                "linked_email": "office@oak.example",
            },
            {
                "key": "oak-masto",
                "platform": "mastodon",
                "handle": "oak@mastodon.example",
                "school": "oak",
                "enabled": False,
                "admins": ["comms1"],
                "approved_by": "oakhead",
                "linked_email": "office@oak.example",
            },
            {
                "key": "river-reddit",
                "platform": "reddit",
                "handle": HUGE_HANDLE,
                "school": "river",
                "enabled": False,
                "admins": ["comms3", "riverslt"],
                "approved_by": "riverslt",
                "linked_email": "office@river.example",
            },
            {
                "key": "river-bsky",
                "platform": "bluesky",
                "handle": "river.bsky.social",
                "school": "river",
                "admins": ["comms3", "riverslt"],
                "approved_by": "riverslt",
                "linked_email": "office@river.example",
            },
        ],
        "digest": {"weekday": "monday", "time": "07:30", "per_school": True},
    }


def make_config(**digest: Any) -> Config:
    """The validated configuration (``digest`` overrides digest settings)."""
    data = config_dict()
    data["digest"] = {**data["digest"], **digest}
    return Config.model_validate(data)


def write_config(path: Path) -> Path:
    """The configuration as a YAML file (for the CLI)."""
    path.write_text(yaml.safe_dump(config_dict(), allow_unicode=True), encoding="utf-8")
    return path


# ------------------------------------------------------------- records


@dataclass
class SeedItem:
    account: str
    created_at: datetime
    seen_at: datetime
    text: str
    author: str
    author_name: str | None = None
    hidden_at: datetime | None = None
    assessed: bool = True
    model: str | None = "original"
    flagged: bool = False
    db_id: int = 0


@dataclass
class SeedCase:
    category: str
    state: str
    opened_at: datetime
    account: str | None
    item: SeedItem | None = None
    due_at: datetime | None = None
    responded_at: datetime | None = None
    closed_at: datetime | None = None
    breached_at: datetime | None = None
    restricted: bool = False
    title: str = "A case"
    details: dict[str, Any] = field(default_factory=dict)
    school_override: str | None = None  # for cases without an account
    db_id: int = 0


@dataclass
class SeedStaffChange:
    key: str
    leaving_on: date | None = None
    left_at: datetime | None = None
    successor: str | None = None
    handover_accounts: list[str] = field(default_factory=list)


@dataclass
class Seed:
    items: list[SeedItem]
    cases: list[SeedCase]
    staff: list[SeedStaffChange]
    schools: dict[str, str]  # account key -> school key
    platforms: dict[str, str]  # account key -> platform


ACCOUNTS = {
    "oak-bsky": ("oak", "bluesky"),
    "oak-masto": ("oak", "mastodon"),
    "river-reddit": ("river", "reddit"),
    "river-bsky": ("river", "bluesky"),
}


def _content_case(rng: random.Random, item: SeedItem) -> SeedCase:
    """A content case for ``item`` in one of the R2 situations."""
    category = rng.choice(CONTENT)
    opened = item.seen_at + timedelta(seconds=rng.randint(1, 900))
    case = SeedCase(
        category=category,
        state="new",
        opened_at=opened,
        account=item.account,
        item=item,
        restricted=category == "safeguarding",
        title=f"{category} on {item.account}",
    )
    if rng.random() < 0.7:
        received = min(item.created_at, item.seen_at)
        case.due_at = received + timedelta(hours=rng.randint(1, 60), minutes=rng.randint(0, 59))
        situation = rng.choice(
            ["on_time", "late", "open", "closed_early", "dismissed_late", "reopened", "open"]
        )
        due = case.due_at
        if situation == "on_time":
            case.state = rng.choice(["responded", "closed"])
            case.responded_at = due - timedelta(minutes=rng.randint(0, 600))
            if case.state == "closed":
                case.closed_at = due + timedelta(hours=1)
        elif situation == "late":
            case.state = "responded"
            case.breached_at = due + timedelta(minutes=5)
            case.responded_at = due + timedelta(minutes=rng.randint(6, 3000))
        elif situation == "open":
            case.state = rng.choice(["new", "acknowledged", "escalated"])
            if due <= NOW:
                case.breached_at = due + timedelta(minutes=5)
                case.state = "escalated"
        elif situation == "closed_early":
            case.state = rng.choice(["closed", "dismissed"])
            case.closed_at = due - timedelta(minutes=rng.randint(1, 300))
        elif situation == "dismissed_late":
            case.state = "dismissed"
            case.breached_at = due + timedelta(minutes=5)
            case.closed_at = due + timedelta(hours=2)
        else:  # answered on time, then reopened by an escalation
            case.state = "escalated"
            case.responded_at = due - timedelta(minutes=30)
    else:
        case.state = rng.choice(["new", "actioned", "closed", "dismissed"])
        if case.state in ("closed", "dismissed"):
            case.closed_at = opened + timedelta(hours=rng.randint(1, 200))
    return case


def build(rng_seed: int = 20261123) -> Seed:
    """The records (deterministic for a given seed)."""
    rng = random.Random(rng_seed)
    items: list[SeedItem] = []
    cases: list[SeedCase] = []
    # ten weeks of items: two before the trend window, the trend window, and one after
    first = TREND_START - timedelta(weeks=2)
    for week in range(11):
        week_start = first + timedelta(weeks=week)
        for account in ACCOUNTS:
            for _ in range(rng.randint(0 if account == "oak-masto" else 3, 14)):
                seen = week_start + timedelta(seconds=rng.randint(0, 7 * 86400 - 1))
                created = seen - timedelta(seconds=rng.randint(0, 7200))
                item = SeedItem(
                    account=account,
                    created_at=created,
                    seen_at=seen,
                    text=rng.choice([HOSTILE_TEXT, "lovely photos", "when is the play?"]),
                    author=rng.choice(["<b>troll</b>", "parent.one", "@everyone"]),
                    assessed=rng.random() < 0.85,
                    model=None if rng.random() < 0.3 else "original",
                )
                if rng.random() < 0.15:
                    item.hidden_at = created + timedelta(seconds=rng.randint(0, 3 * 86400))
                items.append(item)
    # items exactly on the week's bounds: the start is in, the end is out
    for seen in (START, END, START - timedelta(microseconds=1), END - timedelta(microseconds=1)):
        items.append(SeedItem("oak-bsky", seen - timedelta(minutes=3), seen, "edge", "edge"))
    # hidden exactly at the bounds, one posted "after" it was hidden (clock skew: counts as 0)
    items.append(SeedItem("river-bsky", START, START, "h", "h", hidden_at=START))
    items.append(SeedItem("river-bsky", END, END, "h", "h", hidden_at=END))
    items.append(
        SeedItem(
            "oak-bsky",
            START + timedelta(hours=5),
            START + timedelta(hours=4),
            "skew",
            "skew",
            hidden_at=START + timedelta(hours=4, minutes=30),
        )
    )
    for item in items:
        if rng.random() < 0.3:
            cases.append(_content_case(rng, item))
            item.flagged = True
    # the safeguarding case whose text and author must never appear in a digest
    secret = SeedItem(
        "oak-bsky",
        START + timedelta(days=2),
        START + timedelta(days=2, minutes=1),
        SG_TEXT,
        SG_AUTHOR,
        author_name=SG_AUTHOR_NAME,
        flagged=True,
    )
    items.append(secret)
    cases.append(
        SeedCase(
            "safeguarding",
            "new",
            secret.seen_at + timedelta(seconds=30),
            "oak-bsky",
            item=secret,
            restricted=True,
            title="Safeguarding concern on oak-bsky",
            details={"categories": ["safeguarding"], "note": SG_TEXT, "author": SG_AUTHOR},
        )
    )
    # a case due exactly at the week's end belongs to the next week
    cases.append(
        SeedCase("needs_response", "new", END - timedelta(hours=3), "river-bsky", due_at=END)
    )
    cases.append(
        SeedCase(
            "needs_response",
            "responded",
            START - timedelta(hours=3),
            "river-bsky",
            due_at=START,
            responded_at=START,
        )
    )
    # closed before its due time without needing a response; answered, then reopened
    cases.append(
        SeedCase(
            "needs_response",
            "dismissed",
            START + timedelta(days=1),
            "oak-bsky",
            due_at=START + timedelta(days=2),
            closed_at=START + timedelta(days=1, hours=2),
        )
    )
    cases.append(
        SeedCase(
            "media_enquiry",
            "escalated",
            START + timedelta(days=3),
            "river-bsky",
            due_at=START + timedelta(days=4),
            responded_at=START + timedelta(days=3, hours=5),
        )
    )
    # a case opened exactly at the start and one at the end
    cases.append(SeedCase("abusive", "new", START, "oak-bsky"))
    cases.append(SeedCase("abusive", "new", END, "oak-bsky"))
    # ---------------------------------------------------------------- operational cases
    d = START
    cases += [
        SeedCase(
            "two_admins",
            "new",
            d - timedelta(days=10),
            "oak-masto",
            details={"admins": ["comms1"]},
            title="oak-masto has 1 active administrator",
        ),
        SeedCase(
            "two_admins",
            "closed",
            d - timedelta(days=10),
            "river-reddit",
            closed_at=d - timedelta(days=1),
            details={"admins": []},
        ),
        SeedCase(
            "two_admins",
            "closed",
            d - timedelta(days=3),
            "river-bsky",
            closed_at=d + timedelta(days=9),  # closed after the week: open at its end
            details={"admins": ["comms3"]},
        ),
        SeedCase(
            "two_admins",
            "new",
            d + timedelta(days=4),
            None,
            details={"leaver": "gone-<x>"},
            title="Handover for Gwen blocked",
        ),
        SeedCase(
            "monitoring_gap",
            "closed",
            d + timedelta(days=2, hours=10),
            "oak-bsky",
            closed_at=d + timedelta(days=2, hours=11),
            details={"last_success": (d + timedelta(days=2, hours=9, minutes=20)).isoformat()},
        ),
        SeedCase(
            "monitoring_gap",
            "new",
            d + timedelta(days=6, hours=23),
            "river-bsky",
            details={"last_success": "never"},
        ),
        SeedCase(
            "monitoring_gap",
            "closed",
            d - timedelta(hours=2),
            "oak-bsky",
            closed_at=d + timedelta(hours=2),
            details={"last_success": (d - timedelta(hours=3)).isoformat()},
        ),
        SeedCase(
            "monitoring_gap",
            "closed",
            d - timedelta(days=3),
            "river-bsky",
            closed_at=d - timedelta(days=2),
            details={"last_success": (d - timedelta(days=3, hours=1)).isoformat()},
        ),
        SeedCase(
            "classifier_down",
            "closed",
            d + timedelta(days=1),
            None,
            closed_at=d + timedelta(days=1, hours=3),
        ),
        SeedCase("classifier_down", "new", d - timedelta(days=5), None),
        SeedCase("removal_overdue", "new", d + timedelta(days=3), "oak-bsky"),
        SeedCase("removal_overdue", "new", d + timedelta(days=3), "river-bsky"),
        SeedCase("credential_rotation", "new", d + timedelta(days=5), "oak-masto"),
    ]
    staff = [
        SeedStaffChange("leaver-soon", leaving_on=date(2026, 12, 10), successor="comms1"),
        SeedStaffChange("leaver-late", leaving_on=date(2027, 3, 1)),
        SeedStaffChange("leaver-river", leaving_on=date(2026, 12, 23)),  # the horizon itself
        SeedStaffChange("leaver-overdue", leaving_on=date(2026, 11, 20)),
        SeedStaffChange(
            "gone-oak",
            leaving_on=date(2026, 11, 18),
            left_at=d + timedelta(days=2, hours=8),
            successor="comms1",
            handover_accounts=["oak-bsky", "oak-masto"],
        ),
        SeedStaffChange(
            "gone-early",
            leaving_on=date(2026, 11, 10),
            left_at=d - timedelta(days=6),
            successor=None,
            handover_accounts=["oak-bsky"],
        ),
    ]
    return Seed(
        items,
        cases,
        staff,
        {k: v[0] for k, v in ACCOUNTS.items()},
        {k: v[1] for k, v in ACCOUNTS.items()},
    )


FIRST_POLL = TREND_START - timedelta(weeks=2)


def insert(
    sessions: sessionmaker[Session],
    config: Config,
    seed: Seed,
    *,
    monitored_since: datetime | None = FIRST_POLL,
) -> None:
    """Apply the configuration, then insert every record (``monitored_since``: the enabled
    accounts' first successful poll; None: never polled)."""
    with transaction(sessions) as session:
        apply_config(session, config, now=TREND_START - timedelta(weeks=4))
    with transaction(sessions) as session:
        accounts = {a.key: a for a in session.scalars(select(t.Account))}
        schools = {s.key: s.id for s in session.scalars(select(t.School))}
        # the enabled accounts have been polled since before every week the tests look at
        for account in accounts.values():
            if account.enabled and monitored_since is not None:
                session.add(
                    t.AccountHealth(
                        account_id=account.id,
                        first_success_at=monitored_since,
                        last_success_at=NOW,
                        consecutive_failures=0,
                    )
                )
        for n, item in enumerate(seed.items):
            account = accounts[item.account]
            row = t.Item(
                platform=account.platform,
                platform_id=f"seed-{n}",
                account_id=account.id,
                stream="replies",
                kind="reply",
                url=f"https://example.test/{n}",
                author_id=f"id-{item.author}",
                author_handle=item.author,
                author_name=item.author_name,
                text=item.text,
                created_at=item.created_at,
                seen_at=item.seen_at,
                visibility="hidden" if item.hidden_at else "visible",
                hidden_at=item.hidden_at,
                flagged=item.flagged,
            )
            session.add(row)
            session.flush()
            item.db_id = row.id
            if item.assessed:
                session.add(
                    t.Assessment(
                        item_id=row.id,
                        model=item.model,
                        scores={},
                        categories=[],
                        severity="none",
                        matches=[],
                        assessed_at=item.seen_at,
                        needs_rescore=item.model is None,
                    )
                )
        for n, case in enumerate(seed.cases):
            case_account = accounts[case.account] if case.account else None
            row_case = t.Case(
                dedupe_key=f"seed:{n}",
                item_id=case.item.db_id if case.item else None,
                account_id=case_account.id if case_account else None,
                school_id=case_account.school_id
                if case_account
                else (schools[case.school_override] if case.school_override else None),
                category=case.category,
                severity="medium",
                state=case.state,
                restricted=case.restricted,
                title=case.title,
                opened_at=case.opened_at,
                due_at=case.due_at,
                breached_at=case.breached_at,
                responded_at=case.responded_at,
                closed_at=case.closed_at,
                details=case.details,
            )
            session.add(row_case)
            session.flush()
            case.db_id = row_case.id
        staff = {s.key: s for s in session.scalars(select(t.Staff))}
        for change in seed.staff:
            member = staff[change.key]
            member.leaving_on = change.leaving_on
            member.successor_key = change.successor
            if change.left_at is not None:
                member.left_at = change.left_at
                member.active = False
                audit.record(
                    session,
                    at=change.left_at,
                    actor="policy",
                    action="staff.left",
                    subject=f"staff:{change.key}",
                    details={"successor": change.successor, "accounts": change.handover_accounts},
                )
        # a different audit action for a leaver in the week: not a handover
        audit.record(
            session,
            at=START + timedelta(days=1),
            actor="policy",
            action="staff.leaving_set",
            subject="staff:leaver-soon",
        )
