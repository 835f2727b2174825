"""Slack messages, emails and the digest link to the matching page of the web workplace."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.config_models import Config
from monitor.constants import AlertChannel
from monitor.directory import load_directory
from monitor.jobs.deliver import deliver_pending
from monitor.notify.messages import CaseMessage, blocks_for
from monitor.notify.slack import SlackRef
from monitor.outbox import enqueue
from monitor.storage.db import transaction
from monitor.web.links import base_url, case_url, digest_url
from tests.web.conftest import START, Trust, trust_config


@dataclass
class FakeSlack:
    posted: list[tuple[str, CaseMessage]] = field(default_factory=list)

    def post(
        self,
        channel: str,
        message: CaseMessage,
        *,
        key: str | None = None,
        also: Sequence[str] = (),
    ) -> SlackRef:
        self.posted.append((channel, message))
        return SlackRef(channel, f"{len(self.posted)}.0")

    def find_keys(
        self, channel: str, keys: Collection[str], *, oldest: float, thread: SlackRef | None = None
    ) -> dict[str, SlackRef]:
        return {}

    def update(self, ref: SlackRef, message: CaseMessage) -> None:
        raise AssertionError("no update expected")

    def reply_in_thread(
        self, ref: SlackRef, text: str, *, key: str | None = None, also: Sequence[str] = ()
    ) -> SlackRef:
        raise AssertionError("no thread reply expected")

    def post_text(
        self,
        channel: str,
        text: str,
        *,
        key: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
    ) -> SlackRef:
        raise AssertionError("no plain text expected")

    def open_dm(self, user_id: str) -> str:
        return f"D{user_id}"


@dataclass
class FakeEmail:
    sent: list[tuple[list[str], str, str]] = field(default_factory=list)

    def send(
        self,
        to: list[str],
        subject: str,
        text: str,
        html: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> str:
        self.sent.append((to, subject, text))
        return f"<{len(self.sent)}@test>"


def _config(**organisation: Any) -> Config:
    cfg = trust_config({"public_url": "https://monitor.oak.test"})
    return cfg.model_copy(update={"organisation": cfg.organisation.model_copy(update=organisation)})


def test_the_base_is_the_dashboard_url_else_the_web_address() -> None:
    assert base_url(_config()) == "https://monitor.oak.test"
    assert base_url(_config(dashboard_url="https://dash.oak.test/")) == "https://dash.oak.test"
    assert base_url(trust_config()) is None
    assert case_url("https://dash.oak.test", 12) == "https://dash.oak.test/cases/12"
    assert case_url(None, 12) is None
    assert (
        digest_url("https://d.test", week="2026-W47", school="oak")
        == "https://d.test/digest?week=2026-W47&school=oak"
    )


def _deliver(trust: Trust, links_base: str | None) -> tuple[FakeSlack, FakeEmail]:
    ab, sg = trust.ids["abusive_case"], trust.ids["safeguarding_case"]
    with transaction(trust.sessions) as session:
        for case_id, target in ((ab, "C0ALERTS"), (sg, "C0ALERTS")):
            enqueue(
                session,
                key=f"slack:{case_id}",
                channel=AlertChannel.SLACK,
                target=target,
                kind="case_opened",
                now=START,
                case_id=case_id,
            )
        enqueue(
            session,
            key=f"email:{ab}",
            channel=AlertChannel.EMAIL,
            target="dsl@school.test",
            kind="case_opened",
            now=START,
            case_id=ab,
        )
    slack, email = FakeSlack(), FakeEmail()
    with trust.sessions() as session:
        directory = load_directory(session, trust.config.routing, now=START)
    deliver_pending(
        trust.sessions,
        slack=slack,
        email=email,
        directory=directory,
        now=START,
        links_base=links_base,
    )
    return slack, email


def test_slack_and_email_carry_the_case_link(trust: Trust) -> None:
    ab, sg = trust.ids["abusive_case"], trust.ids["safeguarding_case"]
    slack, email = _deliver(trust, "https://monitor.oak.test")
    by_case = {message.case_id: message for _, message in slack.posted}
    assert set(by_case) == {ab, sg}
    for case_id, message in by_case.items():
        blocks = str(blocks_for(message))
        assert f"<https://monitor.oak.test/cases/{case_id}|Open the case page>" in blocks
    # a shared channel still sees nothing of the safeguarding case: only where to look
    assert by_case[sg].restricted and "secret-disclosure" not in str(blocks_for(by_case[sg]))
    ((to, _, text),) = email.sent
    assert to == ["dsl@school.test"]
    assert f"Open the case page: https://monitor.oak.test/cases/{ab}" in text


def test_no_link_without_a_web_address(trust: Trust) -> None:
    slack, email = _deliver(trust, None)
    assert slack.posted and all(m.case_url is None for _, m in slack.posted)
    assert "Open the case page" not in str([blocks_for(m) for _, m in slack.posted])
    assert "Open the case page" not in email.sent[0][2]


def test_the_digest_links_to_its_page(trust: Trust) -> None:
    from monitor.digest.send import _render_scope

    rendered, _ = _render_scope(
        trust.sessions, _config(), week="2026-W47", scope="school:oak", now=START
    )
    assert "https://monitor.oak.test/digest?week=2026-W47&amp;school=oak" in rendered.html
    trust_wide, _ = _render_scope(
        trust.sessions, _config(), week="2026-W47", scope="trust", now=START
    )
    assert "https://monitor.oak.test/digest?week=2026-W47" in trust_wide.html
