"""The durable outbox end to end: real slack-sdk against the local Slack, real smtplib against aiosmtpd."""

from __future__ import annotations

import email
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor import cases
from monitor.config import load_config
from monitor.config_models import Config, Routing, SchoolChannels
from monitor.constants import AlertStatus, Category, Severity
from monitor.directory import load_directory
from monitor.jobs.buttons import button_handler
from monitor.jobs.deliver import MAX_ATTEMPTS, SENDING, deliver_pending
from monitor.notify.buttons import ButtonListener
from monitor.notify.email import EmailSender
from monitor.notify.slack import SlackSender, make_web_client
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.sync import apply_config
from tests.conftest import EXAMPLE_CONFIG
from tests.notify.test_email_delivery import Mailbox, smtp_server
from tests.servers.slack_server import APP_TOKEN, BOT_TOKEN, SlackServer

HOSTILE = "<!channel> <@U0DAN> you *idiot* &amp; <script>alert(1)</script> \u202eevil"
SLACK_IDS = {"bpatel": "U0DSL", "dmurphy": "U0DAN", "cjones": "U0AMY"}


def config_for_slack() -> Config:
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


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    server = SlackServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, EmailSender]]:
    box = Mailbox()
    with smtp_server(box, tls=None) as port:
        yield (
            box,
            EmailSender(
                "127.0.0.1", port, None, None, "monitor@school.example", starttls=False, timeout=5.0
            ),
        )


@pytest.fixture
def world(sessions: sessionmaker[Session], now: datetime) -> tuple[sessionmaker[Session], Config]:
    cfg = config_for_slack()
    with transaction(sessions) as session:
        apply_config(session, cfg, now=now)
    return sessions, cfg


def open_case(
    sessions: sessionmaker[Session],
    cfg: Config,
    now: datetime,
    category: Category,
    *,
    text: str = HOSTILE,
) -> int:
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
            severity=Severity.HIGH,
            title=f"{category.value} on oakfield-bluesky",
            now=now,
            item_id=item.id,
            account_id=account.id,
            school_id=account.school_id,
            restricted=restricted,
            details={"categories": [category.value]},
        )
        cases.notify(
            session, case, load_directory(session, cfg.routing), kind="case_opened", now=now
        )
        return case.id


def deliver(
    sessions: sessionmaker[Session],
    cfg: Config,
    slack: SlackServer | None,
    mail: EmailSender | None,
    now: datetime,
) -> list[Any]:
    sender = (
        SlackSender(make_web_client(BOT_TOKEN, base_url=slack.base_url, timeout=5))
        if slack
        else None
    )
    with sessions() as session:
        directory = load_directory(session, cfg.routing)
    return deliver_pending(sessions, slack=sender, email=mail, directory=directory, now=now)


def all_text(message: Any) -> str:
    return repr(message.blocks) + (message.text or "")


def test_abusive_case_posts_once_with_escaped_text(
    world: Any, slack: SlackServer, now: datetime
) -> None:
    sessions, cfg = world
    open_case(sessions, cfg, now, Category.ABUSIVE)
    results = deliver(sessions, cfg, slack, None, now)
    assert [r.status for r in results] == ["sent"]
    [message] = slack.messages
    assert message.channel == "C0ALERTS"
    body = all_text(message)
    assert (
        "<!channel>" not in body
        and "<@U0DAN>" not in body
        and "<script>" not in body
        and "\u202e" not in body
    )
    assert "&lt;!channel&gt;" in body or "＠channel" in body
    assert deliver(sessions, cfg, slack, None, now + timedelta(minutes=1)) == []  # never sent twice
    assert len(slack.messages) == 1


def test_safeguarding_content_only_reaches_the_dsl(
    world: Any, slack: SlackServer, mailbox: Any, now: datetime
) -> None:
    sessions, cfg = world
    box, mail = mailbox
    open_case(sessions, cfg, now, Category.SAFEGUARDING, text="my uncle hurts me, please help")
    results = deliver(sessions, cfg, slack, mail, now)
    assert all(r.status == "sent" for r in results), results
    by_channel = {m.channel: all_text(m) for m in slack.messages}
    assert (
        "please help" not in by_channel["C0SAFE"] and "Escalated to the DSL" in by_channel["C0SAFE"]
    )
    assert "please help" in by_channel[slack.dm_channel("U0DSL")]
    recipients = sorted(r for received in box.received for r in received.rcpt_tos)
    assert recipients == ["b.patel@oakfield.example.sch.uk", "d.murphy@oakfield.example.sch.uk"]
    parsed = email.message_from_bytes(box.received[0].content)
    assert "please help" in parsed.get_payload(decode=False) if not parsed.is_multipart() else True


def test_rate_limit_is_honoured_then_delivered_exactly_once(
    world: Any, slack: SlackServer, now: datetime
) -> None:
    sessions, cfg = world
    open_case(sessions, cfg, now, Category.ABUSIVE)
    slack.fail_next("ratelimited", method="chat.postMessage", retry_after=42)
    [first] = deliver(sessions, cfg, slack, None, now)
    assert first.status == "retry"
    with sessions() as session:
        alert = session.scalars(select(t.Alert)).one()
        assert (
            alert.next_attempt_at == now + timedelta(seconds=42)
            and alert.status == AlertStatus.PENDING.value
        )
    assert deliver(sessions, cfg, slack, None, now + timedelta(seconds=41)) == []
    [second] = deliver(sessions, cfg, slack, None, now + timedelta(seconds=42))
    assert second.status == "sent" and len(slack.messages) == 1


def test_dead_slack_is_retried_then_failed_and_it_is_told_by_email(
    world: Any, mailbox: Any, now: datetime
) -> None:
    sessions, cfg = world
    box, mail = mailbox
    open_case(sessions, cfg, now, Category.ABUSIVE)
    dead = SlackServer().start()
    dead.stop()  # nothing listens there any more
    moment = now
    for _ in range(MAX_ATTEMPTS):
        results = deliver(sessions, cfg, dead, mail, moment)
        moment += timedelta(hours=2)
    with sessions() as session:
        alert = session.scalars(select(t.Alert).where(t.Alert.kind == "case_opened")).one()
        assert alert.status == AlertStatus.FAILED.value and alert.attempts == MAX_ATTEMPTS
        assert "unreachable" in (alert.last_error or "")
    deliver(sessions, cfg, None, mail, moment)
    told = [r for received in box.received for r in received.rcpt_tos]
    assert told == ["it@northfield.example.org.uk"]
    assert results


def test_no_duplicate_after_a_crash_mid_delivery(
    world: Any, slack: SlackServer, now: datetime
) -> None:
    sessions, cfg = world
    open_case(sessions, cfg, now, Category.ABUSIVE)
    sender = SlackSender(make_web_client(BOT_TOKEN, base_url=slack.base_url, timeout=5))
    with transaction(sessions) as session:
        alert = session.scalars(select(t.Alert)).one()
        # the worker claimed it, Slack accepted the post, and the process died before recording it
        alert.status = SENDING
        alert.attempts = 1
        alert.created_at = datetime.now(UTC)  # Slack's clock: the local server stamps real time
        case = session.get(t.Case, alert.case_id)
        assert case is not None
        from monitor.notify.case_view import case_message

        sender.post(
            "C0ALERTS", case_message(session, case, show_content=True), key=alert.idempotency_key
        )
    posts_before = slack.request_count("chat.postMessage")
    [result] = deliver(sessions, cfg, slack, None, now + timedelta(minutes=1))
    assert result.status == "sent"
    assert slack.request_count("chat.postMessage") == posts_before  # adopted, not re-sent
    assert len(slack.messages) == 1


def test_case_changes_update_the_message_in_place(
    world: Any, slack: SlackServer, now: datetime
) -> None:
    sessions, cfg = world
    case_id = open_case(sessions, cfg, now, Category.ABUSIVE)
    deliver(sessions, cfg, slack, None, now)
    with transaction(sessions) as session:
        case = session.get(t.Case, case_id)
        assert case is not None
        cases.change_state(session, case, cases.CaseState.ACTIONED, actor="dmurphy", now=now)
        cases.notify(
            session, case, load_directory(session, cfg.routing), kind="case_updated:1", now=now
        )
    deliver(sessions, cfg, slack, None, now + timedelta(minutes=1))
    top = [m for m in slack.messages if m.thread_ts is None]
    replies = [m for m in slack.messages if m.thread_ts is not None]
    assert len(top) == 1 and len(top[0].edits) == 1 and "actioned" in all_text(top[0]).lower()
    assert len(replies) == 1 and replies[0].thread_ts == top[0].ts


def test_quiet_hours_hold_non_urgent_alerts_only(
    world: Any, slack: SlackServer, now: datetime
) -> None:
    sessions, cfg = world
    cfg = cfg.model_copy(
        update={
            "routing": cfg.routing.model_copy(update={"quiet_hours": (time(20, 0), time(7, 0))})
        }
    )
    open_case(sessions, cfg, now, Category.ABUSIVE)
    open_case(sessions, cfg, now, Category.THREAT)
    late = now.replace(hour=22)  # 22:00 GMT
    results = deliver(sessions, cfg, slack, None, late)
    statuses = sorted(r.status for r in results)
    assert "deferred" in statuses and "sent" in statuses
    with sessions() as session:
        held = session.scalars(
            select(t.Alert).where(
                t.Alert.status == AlertStatus.PENDING.value, t.Alert.kind == "case_opened"
            )
        ).all()
        assert held and all(not a.urgent for a in held), [
            (a.kind, a.urgent, a.target) for a in held
        ]
        assert all(
            a.next_attempt_at == (late + timedelta(days=1)).replace(hour=7, minute=0) for a in held
        )


def test_button_round_trip_checks_roles(world: Any, slack: SlackServer, now: datetime) -> None:
    sessions, cfg = world
    case_id = open_case(sessions, cfg, now, Category.ABUSIVE)
    deliver(sessions, cfg, slack, None, now)
    [message] = slack.messages
    handler = button_handler(sessions, lambda s: load_directory(s, cfg.routing), lambda: now)
    listener = ButtonListener(
        app_token=APP_TOKEN,
        web_client=make_web_client(BOT_TOKEN, base_url=slack.base_url, timeout=5),
        handler=handler,
        concurrency=1,
    )
    with listener:
        assert slack.wait_for(lambda: slack.connected_sessions == 1, timeout=10)
        slack.click(message, "case:hide", user_id="U0DSL")  # bpatel: DSL, may hide
        assert slack.wait_for(
            lambda: any(m.thread_ts == message.ts for m in slack.messages), timeout=10
        )
        slack.click(message, "case:not_abusive", user_id="U0AMY")  # cjones: moderator, may dismiss
        assert slack.wait_for(
            lambda: sum(m.thread_ts == message.ts for m in slack.messages) == 2, timeout=10
        )
    replies = [m.text for m in slack.messages if m.thread_ts == message.ts]
    assert replies[0] == "Hide requested by Bilal Patel."
    assert replies[1] == "Marked not abusive by Cerys Jones."
    with sessions() as session:
        kinds = session.scalars(
            select(t.ActionRequest.kind)
            .where(t.ActionRequest.case_id == case_id)
            .order_by(t.ActionRequest.id)
        ).all()
        assert kinds == ["hide", "dismiss"]


def test_an_unknown_slack_user_cannot_act(world: Any, slack: SlackServer, now: datetime) -> None:
    sessions, cfg = world
    case_id = open_case(sessions, cfg, now, Category.ABUSIVE)
    handler = button_handler(sessions, lambda s: load_directory(s, cfg.routing), lambda: now)
    from monitor.notify.buttons import ButtonClick

    answer = handler(ButtonClick("U0NOBODY", "hide", case_id, "C0ALERTS", "1.0"))
    assert "not linked" in answer
    with sessions() as session:
        assert session.scalars(select(t.ActionRequest)).all() == []
