"""A small trust for the web tests: two schools, staff in each role, an abusive reply and a
safeguarding disclosure, plus an in-process client that signs in with local accounts."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from monitor import cases
from monitor.config_models import Config
from monitor.constants import Category, Severity
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.sync import apply_config
from monitor.web import accounts
from monitor.web.app import create_app

START = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
PASSWORD = "correct horse battery staple"
# names and text that would be live markup if anything were not escaped
EVIL_NAME = '<script>alert("name")</script><b>Bold</b>'
EVIL_TEXT = 'you idiot <img src=x onerror=alert(1)> <script>alert("x")</script> [b]x[/b] *bold*'


def trust_config(web: dict[str, Any] | None = None) -> Config:
    return Config.model_validate(
        {
            "organisation": {"name": "Test Trust"},
            "schools": [{"key": "oak", "name": "Oak School"}, {"key": "elm", "name": "Elm School"}],
            "staff": [
                {
                    "id": "dana",
                    "name": "Dana Safeguarding (DSL)",
                    "email": "dsl@school.test",
                    "roles": ["dsl"],
                    "schools": ["oak"],
                },
                {
                    "id": "morgan",
                    "name": "Morgan Moderator",
                    "email": "moderator@school.test",
                    "roles": ["moderator"],
                    "schools": ["oak"],
                },
                {
                    "id": "elmo",
                    "name": "Elmo Moderator",
                    "email": "elmo@elm.test",
                    "roles": ["moderator"],
                    "schools": ["elm"],
                },
                {
                    "id": "lee",
                    "name": "Lee Leaver",
                    "email": "lee@school.test",
                    "roles": ["moderator"],
                    "schools": ["oak"],
                    "leaving_date": "2026-11-30",
                },
                {"id": "ivy", "name": "Ivy IT", "email": "ivy@trust.test", "roles": ["it_admin"]},
                {
                    "id": "sam",
                    "name": "Sam Senior",
                    "email": "sam@school.test",
                    "roles": ["slt"],
                    "schools": ["oak"],
                },
            ],
            "accounts": [
                {
                    "key": "oak-bsky",
                    "platform": "bluesky",
                    "handle": "oak.bsky.social",
                    "school": "oak",
                    "admins": ["dana", "morgan"],
                    "approved_by": "dana",
                    "linked_email": "social@oak.test",
                },
                {
                    "key": "elm-masto",
                    "platform": "mastodon",
                    "handle": "@elm@masto.test",
                    "school": "elm",
                    "admins": ["elmo"],
                    "approved_by": "elmo",
                    "linked_email": "social@elm.test",
                },
            ],
            "web": web or {},
        }
    )


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@dataclass
class Trust:
    sessions: sessionmaker[Session]
    config: Config
    clock: Clock
    ids: dict[str, int] = field(default_factory=dict)

    def app(self, **kwargs: Any) -> Any:
        engine = self.sessions.kw["bind"]
        return create_app(
            engine, config=self.config, session_secret="test-secret", clock=self.clock, **kwargs
        )


def _item(session: Session, account: t.Account, pid: str, text: str, **kw: Any) -> t.Item:
    item = t.Item(
        platform=account.platform,
        platform_id=pid,
        account_id=account.id,
        stream="replies",
        kind=kw.pop("kind", "reply"),
        url=f"https://bsky.app/post/{pid}",
        author_id=f"did:{pid}",
        author_handle=kw.pop("handle", "someone.bsky.social"),
        author_name=kw.pop("name", None),
        text=text,
        created_at=START - timedelta(hours=1),
        seen_at=START,
        **kw,
    )
    session.add(item)
    session.flush()
    return item


def seed(sessions: sessionmaker[Session], config: Config) -> dict[str, int]:
    ids: dict[str, int] = {}
    with transaction(sessions) as session:
        apply_config(session, config, now=START)
        oak = session.query(t.Account).filter_by(key="oak-bsky").one()
        elm = session.query(t.Account).filter_by(key="elm-masto").one()
        post = _item(
            session,
            oak,
            "post1",
            "Sports day is on Friday!",
            kind="post",
            is_own=True,
            handle="oak.bsky.social",
            name="Oak School",
        )
        abusive = _item(
            session,
            oak,
            "reply1",
            EVIL_TEXT,
            parent_id="post1",
            root_id="post1",
            handle="troll.bsky.social",
            name=EVIL_NAME,
        )
        _item(session, oak, "reply2", "Looking forward to it", parent_id="post1", root_id="post1")
        disclosure = _item(
            session,
            oak,
            "reply3",
            "secret-disclosure-text about home",
            parent_id="post1",
            root_id="post1",
            handle="child.bsky.social",
        )
        elm_item = _item(session, elm, "elm1", "elm abuse text", handle="x.masto.test")
        session.add(
            t.Assessment(
                item_id=abusive.id,
                model="test",
                scores={"toxicity": 0.97},
                categories=["abusive"],
                severity="high",
                assessed_at=START,
                matches=[
                    {
                        "rule_id": "abusive.insult",
                        "category": "abusive",
                        "start": 4,
                        "end": 9,
                        "matched": "idiot",
                        "reason": "an insult",
                    }
                ],
            )
        )
        c1, _ = cases.open_case(
            session,
            dedupe_key="item:abusive",
            category=Category.ABUSIVE,
            severity=Severity.HIGH,
            title=f"Abusive reply {EVIL_NAME}",
            now=START,
            item_id=abusive.id,
            account_id=oak.id,
            school_id=oak.school_id,
            due_at=START + timedelta(hours=4),
        )
        c2, _ = cases.open_case(
            session,
            dedupe_key="item:sg",
            category=Category.SAFEGUARDING,
            severity=Severity.CRITICAL,
            title="Disclosure: secret-title",
            now=START,
            item_id=disclosure.id,
            account_id=oak.id,
            school_id=oak.school_id,
            restricted=True,
            due_at=START - timedelta(hours=2),
        )
        c3, _ = cases.open_case(
            session,
            dedupe_key="item:elm",
            category=Category.ABUSIVE,
            severity=Severity.MEDIUM,
            title="Elm abuse",
            now=START,
            item_id=elm_item.id,
            account_id=elm.id,
            school_id=elm.school_id,
        )
        session.add(
            t.Evidence(
                case_id=c1.id,
                item_id=abusive.id,
                captured_at=START,
                captured_by="worker",
                snapshot={"text": EVIL_TEXT},
                sha256="ab" * 32,
            )
        )
        ids.update(post=post.id, abusive_case=c1.id, safeguarding_case=c2.id, elm_case=c3.id)
        for key in ("dana", "morgan", "elmo", "lee", "ivy", "sam"):
            accounts.set_password(session, key, PASSWORD, now=START, with_totp=False)
    return ids


@pytest.fixture
def trust(migrated_engine: Engine, sessions: sessionmaker[Session]) -> Trust:
    config = trust_config()
    clock = Clock()
    return Trust(sessions, config, clock, seed(sessions, config))


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def sign_in(client: TestClient, name: str, password: str = PASSWORD, code: str = "") -> Any:
    page = client.get("/login")
    return client.post(
        "/login",
        data={
            "csrf": csrf_of(page.text),
            "name": name,
            "password": password,
            "code": code,
            "next": "/queue",
        },
        follow_redirects=False,
    )


@pytest.fixture
def client_for(trust: Trust) -> Callable[[str], TestClient]:
    def make(name: str) -> TestClient:
        client = TestClient(trust.app(), base_url="http://127.0.0.1")
        response = sign_in(client, name)
        assert response.status_code == 303, response.text
        return client

    return make


def audit_actions(sessions: sessionmaker[Session]) -> list[tuple[str, str, str]]:
    with sessions() as session:
        return [
            (e.actor, e.action, e.subject)
            for e in session.query(t.AuditEvent).order_by(t.AuditEvent.seq)
        ]


__all__ = ["EVIL_NAME", "EVIL_TEXT", "PASSWORD", "START", "Clock", "Trust", "date"]
