"""Alerts that do not get through: never dropped, copied by the other channel, escalated.

Real slack-sdk against the local Slack, real smtplib against aiosmtpd, as the outbox tests.
"""

from __future__ import annotations

import email
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.config_models import Config
from monitor.constants import AlertChannel, AlertStatus, Category
from monitor.notify.email import EmailSender
from monitor.outbox import enqueue
from monitor.storage import tables as t
from monitor.storage.db import transaction
from tests.notify import outbox_world
from tests.notify.outbox_world import open_case
from tests.notify.test_email_delivery import Mailbox
from tests.servers.slack_server import SlackServer

pytestmark = pytest.mark.peer
# the policy in the issue: at most 15 minutes between attempts, a copy by the other channel
# after 15 minutes undelivered, the principal after 10 minutes without a DSL
FIFTEEN = timedelta(minutes=15)
TEN = timedelta(minutes=10)
MODERATORS = {  # oakfield's moderators (cjones, dmurphy) and the trust-wide one (fali)
    "c.jones@oakfield.example.sch.uk",
    "d.murphy@oakfield.example.sch.uk",
    "f.ali@northfield.example.org.uk",
}
IT = "it@northfield.example.org.uk"
PRINCIPAL = "a.okafor@oakfield.example.sch.uk"
DSLS = {"b.patel@oakfield.example.sch.uk", "d.murphy@oakfield.example.sch.uk"}


@pytest.fixture
def dead_slack() -> SlackServer:
    dead = SlackServer().start()
    dead.stop()  # nothing listens there any more
    return dead


def deliver(
    sessions: sessionmaker[Session],
    cfg: Config,
    slack: SlackServer | None,
    mail: EmailSender | None,
    now: datetime,
) -> list[Any]:
    return outbox_world.deliver(sessions, cfg, slack.base_url if slack else None, mail, now)


def alerts(sessions: sessionmaker[Session], **where: Any) -> list[t.Alert]:
    with sessions() as session:
        query = select(t.Alert).order_by(t.Alert.id)
        for name, value in where.items():
            query = query.where(getattr(t.Alert, name) == value)
        return list(session.scalars(query))


def mailed(box: Mailbox) -> list[tuple[str, str, str]]:
    """(recipient, subject, body) of every email received."""
    out = []
    for received in box.received:
        parsed = email.message_from_bytes(received.content)
        payload = parsed.get_payload(decode=True)
        body = payload.decode() if isinstance(payload, bytes) else str(parsed.get_payload())
        out += [(r, str(parsed["Subject"]), body) for r in received.rcpt_tos]
    return out


def test_an_alert_raised_before_slack_is_configured_waits_and_is_then_delivered(
    slack_trust: Any, slack_at_now: SlackServer, now: datetime
) -> None:
    sessions, cfg = slack_trust
    open_case(sessions, cfg, now, Category.ABUSIVE)  # a post in the school's Slack channel
    for later in (timedelta(0), timedelta(minutes=5), timedelta(hours=3)):
        deliver(sessions, cfg, None, None, now + later)  # neither Slack nor email configured
    [alert] = alerts(sessions, kind="case_opened")
    assert alert.status == AlertStatus.PENDING.value  # not failed: it waits for Slack
    assert slack_at_now.messages == []
    # Slack is configured (the worker restarts with SLACK_BOT_TOKEN): it goes at once
    results = deliver(sessions, cfg, slack_at_now, None, now + timedelta(hours=3, seconds=1))
    assert {r.alert_id: r.status for r in results}[alert.id] == "sent"
    assert [m.channel for m in slack_at_now.messages].count("C0ALERTS") == 1
    [alert] = alerts(sessions, kind="case_opened")
    assert alert.status == AlertStatus.SENT.value


def test_an_alert_waiting_for_email_does_not_hold_up_slack(
    slack_trust: Any, slack_at_now: SlackServer, now: datetime
) -> None:
    sessions, cfg = slack_trust
    open_case(sessions, cfg, now, Category.SAFEGUARDING, text="please help")
    results = deliver(sessions, cfg, slack_at_now, None, now)  # email not configured
    assert {r.status for r in results} == {"sent"}  # the DMs and the channel note
    waiting = alerts(sessions, channel="email")
    assert len(waiting) == 2 and all(a.status == AlertStatus.PENDING.value for a in waiting)


def test_a_stuck_channel_post_goes_by_email_after_15_minutes_and_it_hears_once(
    slack_trust: Any, dead_slack: SlackServer, smtp_mailbox: Any, now: datetime
) -> None:
    sessions, cfg = slack_trust
    box, mail = smtp_mailbox
    open_case(sessions, cfg, now, Category.ABUSIVE, text="ZQX you are useless")
    moment = now
    while moment < now + FIFTEEN - timedelta(seconds=1):
        deliver(sessions, cfg, dead_slack, mail, moment)
        moment += timedelta(minutes=1)
    assert box.received == []  # before 15 minutes: retried, nothing else yet
    for later in (FIFTEEN, FIFTEEN + timedelta(minutes=1)):
        deliver(sessions, cfg, dead_slack, mail, now + later)
    # Slack is still down when the next one comes in: IT knows already
    second = now + timedelta(minutes=20)
    open_case(sessions, cfg, second, Category.NEEDS_RESPONSE, text="ZQY when is the play?")
    for later in (timedelta(0), FIFTEEN, timedelta(hours=2)):
        deliver(sessions, cfg, dead_slack, mail, second + later)
    got = mailed(box)
    copies = {to for to, _, body in got if "ZQX" in body}
    assert copies == MODERATORS  # the people the route posts it to, in full (not restricted)
    # the question's copies go to comms (cjones, dmurphy, fali)
    assert {to for to, _, body in got if "ZQY" in body} == MODERATORS
    it_notes = [(subject, body) for to, subject, body in got if to == IT]
    assert len(it_notes) == 1  # once, not once per attempt or per pass
    subject, body = it_notes[0]
    assert "not being delivered" in subject and "slack to C0ALERTS" in body
    assert "ZQX" not in body  # IT gets no content
    originals = alerts(sessions, channel="slack")
    assert len(originals) == 2
    assert all(a.status == AlertStatus.PENDING.value for a in originals)  # still retried


def test_a_stuck_email_goes_by_slack_dm_to_the_same_person(
    slack_trust: Any, slack_at_now: SlackServer, smtp_mailbox: Any, now: datetime
) -> None:
    sessions, cfg = slack_trust
    box, mail = smtp_mailbox
    box.busy.add("b.patel@oakfield.example.sch.uk")  # her mailbox keeps answering 450
    with transaction(sessions) as session:
        enqueue(
            session,
            key="test:dsl-mail",
            channel=AlertChannel.EMAIL,
            target="b.patel@oakfield.example.sch.uk",
            kind="notice",
            now=now,
            urgent=True,
            payload={"subject": "Please look", "text": "Please look at case 7"},
        )
    deliver(sessions, cfg, slack_at_now, mail, now)
    deliver(sessions, cfg, slack_at_now, mail, now + timedelta(minutes=14))
    assert [m for m in slack_at_now.messages if m.channel == slack_at_now.dm_channel("U0DSL")] == []
    deliver(sessions, cfg, slack_at_now, mail, now + FIFTEEN)
    deliver(sessions, cfg, slack_at_now, mail, now + FIFTEEN + timedelta(seconds=1))
    [dm] = [m for m in slack_at_now.messages if m.channel == slack_at_now.dm_channel("U0DSL")]
    assert dm.text == "Please look at case 7"
    it_dm = [m for m in slack_at_now.messages if m.channel == slack_at_now.dm_channel("U0GEO")]
    assert len(it_dm) == 1 and "email to b.patel@oakfield.example.sch.uk" in (it_dm[0].text or "")
    original = alerts(sessions, idempotency_key="test:dsl-mail")[0]
    assert original.status == AlertStatus.PENDING.value  # the email is still retried


def test_retries_are_never_more_than_15_minutes_apart(
    slack_trust: Any, dead_slack: SlackServer, now: datetime
) -> None:
    sessions, cfg = slack_trust
    open_case(sessions, cfg, now, Category.ABUSIVE)
    moment, gaps = now, []
    for _ in range(15):
        deliver(sessions, cfg, dead_slack, None, moment)
        [alert] = alerts(sessions, channel="slack", kind="case_opened")
        assert alert.status == AlertStatus.PENDING.value and alert.next_attempt_at is not None
        gaps.append(alert.next_attempt_at - moment)
        moment = alert.next_attempt_at
    assert max(gaps) == FIFTEEN and gaps[-1] == FIFTEEN
    assert gaps[:3] == [timedelta(seconds=30), timedelta(minutes=1), timedelta(minutes=2)]


def test_a_safeguarding_alert_no_dsl_received_goes_to_the_principal_content_free(
    slack_trust: Any, slack_at_now: SlackServer, smtp_mailbox: Any, now: datetime
) -> None:
    sessions, cfg = slack_trust
    box, mail = smtp_mailbox
    box.busy.update(DSLS)  # the DSL's and the deputy's mail is refused for now
    slack_at_now.fail_next("error", count=1000, method="conversations.open", error="user_not_found")
    case_id = open_case(sessions, cfg, now, Category.SAFEGUARDING, text="ZQX my uncle hurts me")
    deliver(sessions, cfg, slack_at_now, mail, now)
    deliver(sessions, cfg, slack_at_now, mail, now + TEN - timedelta(seconds=1))
    assert all(to != PRINCIPAL for to, _, _ in mailed(box))
    deliver(sessions, cfg, slack_at_now, mail, now + TEN)
    deliver(sessions, cfg, slack_at_now, mail, now + TEN + timedelta(seconds=1))
    to_principal = [(s, b) for to, s, b in mailed(box) if to == PRINCIPAL]
    assert len(to_principal) == 1
    subject, body = to_principal[0]
    assert f"case {case_id}" in subject and "has not reached the DSL" in subject
    for secret in ("ZQX", "uncle", "troll.test", "bsky.app"):  # no content, no author
        assert secret not in subject + body
    # once only, however long the DSL stays unreachable
    deliver(sessions, cfg, slack_at_now, mail, now + timedelta(hours=1))
    assert len([1 for to, _, _ in mailed(box) if to == PRINCIPAL]) == 1


def test_a_dsl_who_got_the_alert_means_no_principal_notice(
    slack_trust: Any, slack_at_now: SlackServer, smtp_mailbox: Any, now: datetime
) -> None:
    sessions, cfg = slack_trust
    box, mail = smtp_mailbox
    box.busy.update(DSLS)  # email fails, but the Slack DMs arrive
    open_case(sessions, cfg, now, Category.SAFEGUARDING, text="ZQX please help")
    deliver(sessions, cfg, slack_at_now, mail, now)
    deliver(sessions, cfg, slack_at_now, mail, now + timedelta(minutes=11))
    assert all(to != PRINCIPAL for to, _, _ in mailed(box))
