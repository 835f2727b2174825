"""The outbox tests' world: the example trust wired to the local Slack, and case helpers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor import cases
from monitor.config import load_config
from monitor.config_models import Config, Routing, SchoolChannels
from monitor.constants import Category, Severity
from monitor.directory import load_directory
from monitor.jobs.deliver import EmailOut, deliver_pending
from monitor.notify.slack import SlackSender, make_web_client
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.web.links import base_url
from tests.conftest import EXAMPLE_CONFIG
from tests.servers.slack_server import BOT_TOKEN

HOSTILE = "<!channel> <@U0DAN> you *idiot* &amp; <script>alert(1)</script> \u202eevil"
# bpatel: DSL; dmurphy: comms, moderator, deputy DSL; cjones: comms, moderator; gsmith: IT only
SLACK_IDS = {"bpatel": "U0DSL", "dmurphy": "U0DAN", "cjones": "U0AMY", "gsmith": "U0GEO"}


def config_for_slack() -> Config:
    """The example configuration with the local Slack's users and channels."""
    cfg = load_config(EXAMPLE_CONFIG, environ={}).config
    staff = [s.model_copy(update={"slack_user_id": SLACK_IDS.get(s.id)}) for s in cfg.staff]
    routing = Routing(
        slack_default_channel="C0ALERTS",
        slack_it_channel="C0ALERTS",
        schools={
            "oakfield": SchoolChannels(default="C0SAFE", by_category={Category.ABUSIVE: "C0ALERTS"})
        },
    )
    return cfg.model_copy(update={"staff": staff, "routing": routing})


def open_case(
    sessions: sessionmaker[Session],
    cfg: Config,
    now: datetime,
    category: Category,
    *,
    text: str = HOSTILE,
    severity: Severity = Severity.HIGH,
) -> int:
    """A reply on oakfield-bluesky with a case of ``category`` and its first alerts queued."""
    with transaction(sessions) as session:
        account = session.scalars(
            select(t.Account).where(t.Account.key == "oakfield-bluesky")
        ).one()
        item = t.Item(
            platform="bluesky",
            platform_id=f"at://did:plc:x/app.bsky.feed.post/{category.value}",
            account_id=account.id,
            stream="replies",
            kind="reply",
            url="https://bsky.app/profile/troll.test/post/1",
            author_id="did:plc:x",
            author_handle="troll.test",
            text=text,
            created_at=now,
            seen_at=now,
        )
        session.add(item)
        session.flush()
        restricted = category is Category.SAFEGUARDING
        case, _ = cases.open_case(
            session,
            dedupe_key=f"item:{item.id}",
            category=category,
            severity=severity,
            title=f"{category.value} on oakfield-bluesky",
            now=now,
            item_id=item.id,
            account_id=account.id,
            school_id=account.school_id,
            restricted=restricted,
            details={"categories": [category.value]},
        )
        cases.notify(
            session,
            case,
            load_directory(session, cfg.routing, now=now),
            kind="case_opened",
            now=now,
        )
        return case.id


def deliver(
    sessions: sessionmaker[Session],
    cfg: Config,
    slack_base_url: str | None,
    mail: EmailOut | None,
    now: datetime,
) -> list[Any]:
    """One delivery pass with the real SlackSender (None: Slack not configured)."""
    sender = (
        SlackSender(make_web_client(BOT_TOKEN, base_url=slack_base_url, timeout=5))
        if slack_base_url
        else None
    )
    with sessions() as session:
        directory = load_directory(session, cfg.routing, now=now)
    return deliver_pending(
        sessions,
        slack=sender,
        email=mail,
        directory=directory,
        now=now,
        links_base=base_url(cfg),
    )
