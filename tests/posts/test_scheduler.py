"""The scheduler against mastodon-mock with Mastodon.py: drafts, approval, checks, exactly once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from connectors.mastodon_publish import MastodonPublisher
from connectors.publishing import OutgoingPost, Progress, Published, PublishError
from monitor import posts
from monitor.digest.figures import PostFigures, compute
from monitor.directory import load_directory
from monitor.jobs.buttons import button_handler
from monitor.jobs.deliver import deliver_pending
from monitor.notify.buttons import parse_block_actions
from monitor.notify.slack import SlackSender, make_web_client
from monitor.posts import Checker, PostError
from monitor.rules.posting import DraftContent
from monitor.storage import tables as t
from monitor.storage.db import transaction
from tests.connectors.harness_mastodon import (  # noqa: F401 - fixture
    SCHOOL,
    MastodonHarness,
    mastodon_harness_fixture,
)
from tests.posts.posts_support import (
    DRAFTER,
    DSL,
    MASTODON_KEY,
    PRINCIPAL,
    png,
    synced,
    trust_config,
)
from tests.servers.slack_server import BOT_TOKEN, SlackServer

pytestmark = pytest.mark.peer


@pytest.fixture
def env(
    sessions: sessionmaker[Session],
    now: datetime,
    tmp_path: Path,
    mastodon_harness: MastodonHarness,
) -> tuple[sessionmaker[Session], Checker, MastodonHarness]:
    cfg = trust_config(tmp_path, api_base_url=mastodon_harness.server.base_url)
    return sessions, synced(sessions, cfg, now), mastodon_harness


def publisher_of(h: MastodonHarness) -> posts.PublisherFor:
    publisher = MastodonPublisher(h.client(SCHOOL))
    return lambda _account: publisher


def images(tmp: Path, *specs: tuple[str, str | None]) -> tuple[Any, ...]:
    out = []
    for number, (alt, pupils) in enumerate(specs):
        path = tmp / f"photo{number}.png"
        path.write_bytes(png(2 + number, 2))
        out.append(posts.load_image(path, alt, pupils))
    return tuple(out)


def draft(
    sessions: sessionmaker[Session],
    checker: Checker,
    now: datetime,
    parts: Sequence[str] = ("Sports day is on Friday! Well done to Harry and Year 5.",),
    **content: Any,
) -> int:
    with transaction(sessions) as session:
        made = posts.create_draft(
            session,
            checker,
            school="oakfield",
            staff_id=content.pop("staff_id", DRAFTER),
            content=DraftContent(tuple(parts), targets=(MASTODON_KEY,), **content),
            now=now,
        )
        return made.id


def approve(
    sessions: sessionmaker[Session], checker: Checker, draft_id: int, now: datetime, **kw: Any
) -> None:
    with transaction(sessions) as session:
        posts.approve(
            session, checker, draft_id, staff_id=kw.pop("staff_id", PRINCIPAL), now=now, **kw
        )


def own_statuses(h: MastodonHarness) -> list[dict[str, Any]]:
    api = h.client(SCHOOL)
    return list(api.account_statuses(h.account_id(SCHOOL), limit=40))


def audit_actions(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return list(
            session.scalars(
                select(t.AuditEvent.action)
                .where(t.AuditEvent.action.startswith("post."))
                .order_by(t.AuditEvent.seq)
            )
        )


# --- approval and the checks ------------------------------------------------------------------


def test_a_two_part_thread_with_two_images_is_published_once(
    env: tuple[sessionmaker[Session], Checker, MastodonHarness], now: datetime, tmp_path: Path
) -> None:
    sessions, checker, h = env
    pics = images(
        tmp_path, ("Year 5 relay team crossing the line", "no pupils"), ("The trophy", "Harry")
    )
    draft_id = draft(
        sessions,
        checker,
        now,
        ("Sports day: what a day!", "Thank you to every parent who came."),
        images=pics,
    )
    approve(sessions, checker, draft_id, now)
    outcomes = posts.publish_due(sessions, checker, publisher_of(h), now)
    assert [o.state for o in outcomes] == [posts.DONE]
    # a second pass (a restart, a retry) publishes nothing more
    assert posts.publish_due(sessions, checker, publisher_of(h), now + timedelta(minutes=1)) == []
    statuses = sorted(own_statuses(h), key=lambda s: int(s["id"]))
    assert len(statuses) == 2
    first, second = statuses
    assert "Sports day: what a day!" in first["content"]
    assert [m["description"] for m in first["media_attachments"]] == [
        "Year 5 relay team crossing the line",
        "The trophy",
    ]
    assert str(second["in_reply_to_id"]) == str(first["id"])
    with sessions() as session:
        publication = session.scalars(select(t.Publication)).one()
        assert publication.platform_ids == [str(first["id"]), str(second["id"])]
        item = session.get(t.Item, publication.item_id)
        assert item is not None and item.is_own and item.platform_id == str(first["id"])
        assert publication.watch_until == now + timedelta(hours=1)
        assert posts.watched_threads(session, now) == [(MASTODON_KEY, str(first["id"]))]
        assert posts.watched_threads(session, now + timedelta(hours=1)) == []
        assert session.scalars(select(t.PostDraft)).one().state == posts.PUBLISHED
    assert audit_actions(sessions) == ["post.drafted", "post.approved", "post.published"]


def test_a_protected_pupil_named_in_full_blocks_a_first_name_does_not(
    env: tuple[sessionmaker[Session], Checker, MastodonHarness], now: datetime
) -> None:
    sessions, checker, _h = env
    bad = draft(sessions, checker, now, ("Congratulations to Harry Lister on his award!",))
    with pytest.raises(PostError, match="protected_pupil at part 1"):
        approve(sessions, checker, bad, now)
    fine = draft(sessions, checker, now, ("Congratulations to Harry L. and Harry on the award!",))
    approve(sessions, checker, fine, now)


def test_no_publication_pupil_and_missing_alt_text_block(
    env: tuple[sessionmaker[Session], Checker, MastodonHarness], now: datetime, tmp_path: Path
) -> None:
    sessions, checker, _h = env
    listed = draft(sessions, checker, now, images=images(tmp_path, ("Choir", "Ben, amara osei")))
    with pytest.raises(PostError, match="no_publication at image 1"):
        approve(sessions, checker, listed, now)
    # a no-publication hit can never be overridden
    with pytest.raises(PostError, match="cannot be overridden"):
        approve(
            sessions, checker, listed, now, overrides={"no_publication@image 1": "parent agreed"}
        )
    no_alt = draft(sessions, checker, now, images=images(tmp_path, ("", "no pupils")))
    with pytest.raises(PostError, match="alt_text at image 1"):
        approve(sessions, checker, no_alt, now)
    undeclared = draft(sessions, checker, now, images=images(tmp_path, ("Choir", None)))
    with pytest.raises(PostError, match="pupils_declared at image 1"):
        approve(sessions, checker, undeclared, now)


def test_bad_input_is_refused_before_approval(
    env: tuple[sessionmaker[Session], Checker, MastodonHarness], now: datetime, tmp_path: Path
) -> None:
    sessions, checker, h = env
    big = tmp_path / "big.png"
    big.write_bytes(png(extra=1_000_001))
    pdf = tmp_path / "notice.png"
    pdf.write_bytes(b"%PDF-1.7 not an image")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"images": (posts.load_image(big, "A big photo", "no pupils"),)}, "image_size at image 1"),
        ({"images": (posts.load_image(pdf, "A notice", "no pupils"),)}, "image_type at image 1"),
        ({"publish_at": now - timedelta(minutes=1)}, "publish_time"),
    ]
    for content, message in cases:
        draft_id = draft(sessions, checker, now, **content)
        with pytest.raises(PostError, match=message):
            approve(sessions, checker, draft_id, now)
    too_long = draft(sessions, checker, now, ("x" * 501,))
    with pytest.raises(PostError, match="501 characters; this instance allows 500"):
        approve(sessions, checker, too_long, now)
    assert posts.publish_due(sessions, checker, publisher_of(h), now + timedelta(days=1)) == []
    assert own_statuses(h) == []


def test_who_may_approve(
    env: tuple[sessionmaker[Session], Checker, MastodonHarness], now: datetime
) -> None:
    sessions, checker, _h = env
    draft_id = draft(sessions, checker, now)
    with pytest.raises(PostError, match="only principal, slt may approve"):
        approve(sessions, checker, draft_id, now, staff_id=DSL)
    with pytest.raises(PostError, match="only principal, slt"):
        approve(sessions, checker, draft_id, now, staff_id=DRAFTER)
    own = draft(sessions, checker, now, staff_id=PRINCIPAL)
    with pytest.raises(PostError, match="nobody approves their own draft"):
        approve(sessions, checker, own, now)
    with pytest.raises(PostError, match="does not work for oakfield"):
        approve(sessions, checker, draft_id, now, staff_id="ewright")


def test_a_warning_is_overridden_with_a_reason_that_is_audited(
    env: tuple[sessionmaker[Session], Checker, MastodonHarness], now: datetime
) -> None:
    sessions, checker, h = env
    draft_id = draft(sessions, checker, now, ("Lost property? Ring the office on 01632 960123.",))
    with pytest.raises(PostError, match="personal_data at part 1"):
        approve(sessions, checker, draft_id, now)
    with pytest.raises(PostError, match="give a reason"):
        approve(sessions, checker, draft_id, now, overrides={"personal_data@part 1": " "})
    approve(
        sessions,
        checker,
        draft_id,
        now,
        overrides={"personal_data@part 1": "the school's own number"},
    )
    assert [o.state for o in posts.publish_due(sessions, checker, publisher_of(h), now)] == [
        posts.DONE
    ]
    with sessions() as session:
        event = session.scalars(
            select(t.AuditEvent).where(t.AuditEvent.action == "post.approved")
        ).one()
        assert event.reason == "personal_data@part 1: the school's own number"
        figures = compute(session, week="2026-W48", scope="oakfield", now=now + timedelta(days=6))
    assert figures.posts == PostFigures(
        published=1, approved=1, changes_requested=0, overridden=1, blocked=0
    )


def test_any_change_after_approval_needs_approval_again(
    env: tuple[sessionmaker[Session], Checker, MastodonHarness], now: datetime
) -> None:
    sessions, checker, h = env
    draft_id = draft(sessions, checker, now, publish_at=now + timedelta(hours=2))
    approve(sessions, checker, draft_id, now)
    with transaction(sessions) as session:
        posts.edit_draft(
            session,
            checker,
            draft_id,
            staff_id=DRAFTER,
            content=DraftContent(
                ("Sports day is on Saturday!",),
                targets=(MASTODON_KEY,),
                publish_at=now + timedelta(hours=2),
            ),
            now=now,
        )
    assert posts.publish_due(sessions, checker, publisher_of(h), now + timedelta(hours=3)) == []
    assert own_statuses(h) == []
    # even a row forced back to pending is refused: the approval is bound to the old hash
    with transaction(sessions) as session:
        publication = session.scalars(select(t.Publication)).one()
        publication.state = posts.PENDING
        session.scalars(select(t.PostDraft)).one().state = posts.APPROVED
    [outcome] = posts.publish_due(sessions, checker, publisher_of(h), now + timedelta(hours=3))
    assert outcome.state == posts.BLOCKED and "approval does not cover" in outcome.detail
    assert own_statuses(h) == []


def test_approved_again_after_a_change_publishes_the_new_text_once(
    env: tuple[sessionmaker[Session], Checker, MastodonHarness], now: datetime
) -> None:
    sessions, checker, h = env
    draft_id = draft(sessions, checker, now, ("Sports day is on Friday!",))
    approve(sessions, checker, draft_id, now)
    with transaction(sessions) as session:
        old_key = session.scalars(select(t.Publication)).one().idempotency_key
        posts.edit_draft(
            session,
            checker,
            draft_id,
            staff_id=DRAFTER,
            content=DraftContent(("Sports day is on Saturday!",), targets=(MASTODON_KEY,)),
            now=now,
        )
    approve(sessions, checker, draft_id, now)
    [outcome] = posts.publish_due(sessions, checker, publisher_of(h), now)
    assert outcome.state == posts.DONE
    assert [s["content"] for s in own_statuses(h)] == ["<p>Sports day is on Saturday!</p>"]
    with sessions() as session:
        assert session.scalars(select(t.Publication)).one().idempotency_key != old_key


def test_checks_run_again_just_before_publishing(
    env: tuple[sessionmaker[Session], Checker, MastodonHarness], now: datetime, tmp_path: Path
) -> None:
    sessions, checker, h = env
    draft_id = draft(
        sessions,
        checker,
        now,
        images=images(tmp_path, ("Choir", "Ben Carter")),
        publish_at=now + timedelta(hours=1),
    )
    approve(sessions, checker, draft_id, now)
    # a parent withdraws consent after approval: Ben joins the no-publication list
    Path(checker.config.posting.no_publication_file or "").write_text("Amara Osei\nBen Carter\n")
    [outcome] = posts.publish_due(sessions, checker, publisher_of(h), now + timedelta(hours=1))
    assert outcome.state == posts.BLOCKED and "no_publication at image 1" in outcome.detail
    assert own_statuses(h) == []
    assert "post.blocked" in audit_actions(sessions)


def test_a_cancelled_post_is_never_published(
    env: tuple[sessionmaker[Session], Checker, MastodonHarness], now: datetime
) -> None:
    sessions, checker, h = env
    draft_id = draft(sessions, checker, now, publish_at=now + timedelta(hours=1))
    approve(sessions, checker, draft_id, now)
    with transaction(sessions) as session:
        stopped = posts.cancel(
            session, checker.config, draft_id, staff_id=DRAFTER, reason="rained off", now=now
        )
    assert stopped == 1
    assert posts.publish_due(sessions, checker, publisher_of(h), now + timedelta(hours=2)) == []
    assert own_statuses(h) == []
    with transaction(sessions) as session, pytest.raises(PostError, match="nothing to approve"):
        posts.approve(session, checker, draft_id, staff_id=PRINCIPAL, now=now)


class CrashAfterPosting:
    """The platform takes each status, then the connection drops (the outcome is unknown)."""

    def __init__(self, inner: MastodonPublisher, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    def publish(self, post: OutgoingPost, done: Sequence[str], progress: Progress) -> Published:
        def lost(ids: Sequence[str]) -> None:
            if self.failures > 0:
                self.failures -= 1
                raise PublishError("connection reset after sending")
            progress(ids)

        return self.inner.publish(post, done, lost)

    def withdraw(self, ids: Sequence[str]) -> None:
        self.inner.withdraw(ids)


def test_an_unknown_outcome_is_retried_without_a_second_copy(
    env: tuple[sessionmaker[Session], Checker, MastodonHarness], now: datetime
) -> None:
    sessions, checker, h = env
    draft_id = draft(sessions, checker, now, ("Part one of our news", "Part two of our news"))
    approve(sessions, checker, draft_id, now)
    flaky = CrashAfterPosting(MastodonPublisher(h.client(SCHOOL)), failures=2)
    at = now
    states = []
    for _ in range(5):
        states += [o.state for o in posts.publish_due(sessions, checker, lambda _a: flaky, at)]
        at += timedelta(hours=2)  # later than Mastodon keeps an Idempotency-Key
    assert states == [posts.PUBLISHING, posts.PUBLISHING, posts.DONE]
    statuses = own_statuses(h)
    assert sorted(s["content"] for s in statuses) == [
        "<p>Part one of our news</p>",
        "<p>Part two of our news</p>",
    ]


def test_idempotency_key_alone_stops_a_repeat(
    env: tuple[sessionmaker[Session], Checker, MastodonHarness], now: datetime
) -> None:
    """The same key twice (no look first) is one status on the server: the mock honours it."""
    _sessions, _checker, h = env
    publisher = MastodonPublisher(h.client(SCHOOL))
    post = OutgoingPost(key="post-1-2-abc", serial=1, parts=("Hello",))
    first = publisher.publish(post, [], lambda _ids: None)
    second = publisher.publish(post, [], lambda _ids: None)
    assert first.ids == second.ids
    assert len(own_statuses(h)) == 1


def test_approval_requests_and_reminders_go_through_the_outbox(
    env: tuple[sessionmaker[Session], Checker, MastodonHarness], now: datetime
) -> None:
    sessions, checker, _h = env
    draft_id = draft(sessions, checker, now)
    with transaction(sessions) as session:
        asked = posts.submit(session, checker.config, draft_id, staff_id=DRAFTER, now=now)
    assert asked == [PRINCIPAL]
    with sessions() as session:
        alerts = session.scalars(select(t.Alert).order_by(t.Alert.id)).all()
        assert [(a.channel, a.target) for a in alerts] == [
            ("slack", "U01ADAOKAF"),
            ("email", "a.okafor@oakfield.example.sch.uk"),
        ]
        assert "Sports day is on Friday" in alerts[0].payload["text"]
        assert f"monitor post approve {draft_id}" in alerts[0].payload["text"]
    for hours, expected in ((3, 0), (4, 1), (5, 0), (8, 1)):
        with transaction(sessions) as session:
            got = posts.remind_waiting(session, checker.config, now + timedelta(hours=hours))
        assert got == expected, hours
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(t.Alert)) == 6


def test_withdraw_keeps_evidence_then_deletes(
    env: tuple[sessionmaker[Session], Checker, MastodonHarness], now: datetime
) -> None:
    sessions, checker, h = env
    draft_id = draft(sessions, checker, now, ("One", "Two"))
    approve(sessions, checker, draft_id, now)
    posts.publish_due(sessions, checker, publisher_of(h), now)
    assert len(own_statuses(h)) == 2
    count = posts.withdraw(
        sessions,
        checker.config,
        publisher_of(h),
        draft_id,
        staff_id=PRINCIPAL,
        reason="wrong date",
        now=now,
    )
    assert count == 1
    assert own_statuses(h) == []
    with sessions() as session:
        evidence = session.scalars(select(t.Evidence)).one()
        assert evidence.snapshot["content"]["parts"] == ["One", "Two"]
    assert audit_actions(sessions)[-2:] == ["post.withdraw_requested", "post.withdrawn"]


def click_payload(blocks: list[dict[str, Any]], action: str, user: str) -> dict[str, Any]:
    """The block_actions payload Slack sends when ``user`` clicks ``action`` in the message."""
    [button] = [b for b in blocks[1]["elements"] if b["action_id"] == action]
    return {
        "type": "block_actions",
        "user": {"id": user},
        "channel": {"id": "D0APPROVER"},
        "message": {"ts": "1700000000.000100"},
        "actions": [{"action_id": button["action_id"], "value": button["value"]}],
    }


def test_approve_and_request_changes_buttons_in_slack(
    env: tuple[sessionmaker[Session], Checker, MastodonHarness], now: datetime
) -> None:
    sessions, checker, h = env
    cfg = checker.config

    def people(session: Session, at: datetime) -> Any:
        return load_directory(session, cfg.routing, now=at, timezone=cfg.organisation.timezone)

    handle = button_handler(sessions, people, lambda: now, checker)
    first = draft(sessions, checker, now, ("Harvest festival on Friday.",))
    with transaction(sessions) as session:
        posts.submit(session, cfg, first, staff_id=DRAFTER, now=now)
    with sessions() as session:
        slack = session.scalars(select(t.Alert).where(t.Alert.channel == "slack")).one()
        blocks = slack.payload["blocks"]
    # the comms officer (no approver role) clicks Approve: refused
    [click] = parse_block_actions(click_payload(blocks, "post:approve", "U01CERYSJN"))
    assert "only principal, slt may approve" in handle(click)
    # the draft changes after the message went out: the old buttons do nothing
    with transaction(sessions) as session:
        posts.edit_draft(
            session,
            checker,
            first,
            staff_id=DRAFTER,
            content=DraftContent(("Harvest festival on Saturday.",), targets=(MASTODON_KEY,)),
            now=now,
        )
    [click] = parse_block_actions(click_payload(blocks, "post:approve", "U01ADAOKAF"))
    assert "changed since you read it" in handle(click)
    [click] = parse_block_actions(click_payload(blocks, "post:changes", "U01ADAOKAF"))
    assert "changed since this message" in handle(click)
    with transaction(sessions) as session:
        posts.submit(session, cfg, first, staff_id=DRAFTER, now=now)
    with sessions() as session:
        latest = session.scalars(
            select(t.Alert).where(t.Alert.channel == "slack").order_by(t.Alert.id.desc())
        ).first()
        assert latest is not None
        fresh = latest.payload["blocks"]
    [click] = parse_block_actions(click_payload(fresh, "post:approve", "U01ADAOKAF"))
    assert handle(click) == f"Post {first} approved by Ada Okafor."
    assert [o.state for o in posts.publish_due(sessions, checker, publisher_of(h), now)] == [
        posts.DONE
    ]
    assert [s["content"] for s in own_statuses(h)] == ["<p>Harvest festival on Saturday.</p>"]


def test_the_approval_request_reaches_slack_with_valid_buttons(
    env: tuple[sessionmaker[Session], Checker, MastodonHarness], now: datetime
) -> None:
    """Delivered through the outbox to the local Slack (which validates Block Kit)."""
    sessions, checker, _h = env
    cfg = checker.config
    first = draft(sessions, checker, now, ("Harvest festival on Friday.",))
    with transaction(sessions) as session:
        posts.submit(session, cfg, first, staff_id=DRAFTER, now=now)
    with SlackServer(users=["U01ADAOKAF"]) as slack, sessions() as session:
        sender = SlackSender(make_web_client(BOT_TOKEN, base_url=slack.base_url, timeout=5))
        people = load_directory(session, cfg.routing, now=now, timezone="Europe/London")
        session.close()
        deliver_pending(
            sessions, slack=sender, email=None, directory=people, now=now + timedelta(hours=3)
        )
        [message] = [m for m in slack.messages if m.blocks and "Harvest" in (m.text or "")]
        _block, button = message.button("post:approve")
        assert button["value"].startswith(f"{first}:")
        assert "Harvest festival on Friday." in (message.text or "")
