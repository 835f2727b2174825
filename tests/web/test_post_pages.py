"""The scheduler in the web workplace (R16): writing a draft with images, the approval page
(approval bound to the content hash, overrides only by a principal and never of a
no-publication hit), and the calendar in UK time, all signed in with CSRF and the rules'
permissions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from connectors.publishing import OutgoingPost, Progress, Published, PublishError
from monitor import posts
from monitor.config_models import Config, StaffMember
from monitor.constants import AlertChannel
from monitor.directory import load_directory
from monitor.jobs.buttons import button_handler
from monitor.notify.buttons import ButtonClick
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.web import accounts
from tests.posts.posts_support import png
from tests.web.conftest import PASSWORD, Clock, Trust, csrf_of, seed, sign_in, trust_config

Client = Callable[[str], TestClient]
NO_PUBLICATION = "Amara Osei"


def post_config(tmp: Path) -> Config:
    (tmp / "no_publication.txt").write_text(NO_PUBLICATION + "\n", encoding="utf-8")
    base = trust_config({"public_url": "http://monitor.oak.test"})
    extra = [
        StaffMember.model_validate(
            {
                "id": "cara",
                "name": "Cara Comms",
                "email": "cara@school.test",
                "roles": ["comms"],
                "schools": ["oak"],
            }
        ),
        StaffMember.model_validate(
            {
                "id": "pat",
                "name": "Pat Principal",
                "email": "pat@school.test",
                "slack_user_id": "UPAT",
                "roles": ["principal"],
                "schools": ["oak"],
            }
        ),
    ]
    posting = base.posting.model_copy(
        update={"no_publication_file": str(tmp / "no_publication.txt")}
    )
    return base.model_copy(update={"staff": [*base.staff, *extra], "posting": posting})


@pytest.fixture
def trust(migrated_engine: Engine, sessions: sessionmaker[Session], tmp_path: Path) -> Trust:
    config = post_config(tmp_path)
    ids = seed(sessions, config)
    with transaction(sessions) as session:
        for key in ("cara", "pat"):
            accounts.set_password(session, key, PASSWORD, now=Clock().now, with_totp=False)
    return Trust(sessions, config, Clock(), ids)


@pytest.fixture
def client_for(trust: Trust, tmp_path: Path) -> Client:
    def make(name: str) -> TestClient:
        app = trust.app(
            post_checker=posts.Checker.for_config(trust.config), media_dir=tmp_path / "media"
        )
        client = TestClient(app, base_url="http://127.0.0.1")
        assert sign_in(client, name).status_code == 303
        return client

    return make


def write(
    client: TestClient,
    tmp: Path,
    *,
    parts: tuple[str, ...] = ("Sports day is on Wednesday!", "Bring water."),
    at: str = "2026-11-25T09:00",
    alt: str = "The relay team crossing the line",
    pupils: str = "",
    no_pupils: bool = True,
    targets: tuple[str, ...] = ("oak-bsky",),
    image: bytes | None = None,
    url: str = "/posts/new",
) -> Any:
    form = client.get(url)
    assert form.status_code == 200, form.text
    data: dict[str, Any] = {
        "csrf": csrf_of(form.text),
        "school": "oak",
        "targets": list(targets),
        "part": list(parts),
        "at": at,
        "img0_alt": alt,
        "img0_pupils": pupils,
    }
    if no_pupils:
        data["img0_none"] = "1"
    files = {"img0_file": ("photo.png", image if image is not None else png(3, 3), "image/png")}
    return client.post(url, data=data, files=files)


def draft_of(trust: Trust, draft_id: int) -> t.PostDraft:
    with trust.sessions() as session:
        draft = session.get(t.PostDraft, draft_id)
        assert draft is not None
        session.expunge(draft)
        return draft


def actions(trust: Trust) -> list[tuple[str, str, str | None]]:
    with trust.sessions() as session:
        return [
            (e.actor, e.action, e.reason)
            for e in session.scalars(
                select(t.AuditEvent)
                .where(t.AuditEvent.action.startswith("post."))
                .order_by(t.AuditEvent.seq)
            )
        ]


def test_a_draft_with_an_image_is_written_checked_and_approved_by_its_hash(
    trust: Trust, client_for: Client, tmp_path: Path
) -> None:
    cara = client_for("cara")
    made = write(cara, tmp_path)
    assert made.status_code == 200 and made.url.path == "/posts/1", made.text
    page = made.text
    assert "Sports day is on Wednesday!" in page and "Part 2" in page and "All passed." in page
    assert "Wed 25 Nov 2026 09:00 GMT" in page
    draft = draft_of(trust, 1)
    image = draft.content["images"][0]
    assert image["alt"] == "The relay team crossing the line" and image["declared"]
    assert Path(image["path"]).read_bytes() == png(3, 3)
    assert draft.content_hash in page
    # comms may write but not approve: no form, and the request is refused
    assert "Approve exactly this post" not in page
    assert "only principal, slt may approve posts for oak" in page
    own = cara.post("/posts/1/approve", data={"csrf": csrf_of(page), "hash": draft.content_hash})
    assert own.status_code == 409 and "only principal, slt may approve" in own.text

    asked = cara.post("/posts/1/submit", data={"csrf": csrf_of(page)})
    assert asked.status_code == 200 and "Sent for approval to" in asked.text
    with trust.sessions() as session:
        alerts = session.scalars(select(t.Alert)).all()
        asked_of = {(a.channel, a.target) for a in alerts}
        # the request links to this page; the Slack one carries the buttons bound to the hash
        assert all(
            "approve it or request changes: http://monitor.oak.test/posts/1" in a.payload["text"]
            for a in alerts
        )
        buttons = [a.payload["blocks"][1] for a in alerts if a.channel == "slack"]
        assert [e["value"] for e in buttons[0]["elements"]] == [f"1:{draft.content_hash}"] * 2
    # the approvers, by Slack DM (with Approve / Request changes buttons) and email
    assert (AlertChannel.EMAIL.value, "sam@school.test") in asked_of
    assert (AlertChannel.EMAIL.value, "pat@school.test") in asked_of
    assert (AlertChannel.SLACK.value, "UPAT") in asked_of

    sam = client_for("sam")
    shown = sam.get("/posts/1")
    assert "Approve exactly this post" in shown.text
    approved = sam.post(
        "/posts/1/approve", data={"csrf": csrf_of(shown.text), "hash": draft.content_hash}
    )
    assert approved.status_code == 200 and "Approved; publishing Wed 25 Nov 2026 09:00 GMT" in (
        approved.text
    )
    with trust.sessions() as session:
        publication = session.scalars(select(t.Publication)).one()
        assert publication.content_hash == draft.content_hash
        assert publication.due_at == draft.publish_at
    assert [a for _, a, _ in actions(trust)] == ["post.drafted", "post.submitted", "post.approved"]
    assert ("staff:sam", "post.approved", None) in actions(trust)


def test_an_approval_is_for_the_content_shown_a_change_needs_a_new_one(
    trust: Trust, client_for: Client, tmp_path: Path
) -> None:
    write(client_for("cara"), tmp_path)
    sam = client_for("sam")
    shown = sam.get("/posts/1")
    old_hash = draft_of(trust, 1).content_hash
    # the drafter changes the text while the approver reads the old one
    cara = client_for("cara")
    edit = cara.get("/posts/1/edit")
    assert "Sports day is on Wednesday!" in edit.text and "image/png" in edit.text
    changed = cara.post(
        "/posts/1/edit",
        data={
            "csrf": csrf_of(edit.text),
            "school": "oak",
            "targets": ["oak-bsky"],
            "part": ["Sports day moves to Thursday!"],
            "at": "2026-11-26T09:00",
            "img0_existing": "0",
            "img0_alt": "The relay team crossing the line",
            "img0_none": "1",
        },
    )
    assert changed.status_code == 200 and "Sports day moves to Thursday!" in changed.text
    new = draft_of(trust, 1)
    assert new.content_hash != old_hash and len(new.content["images"]) == 1
    stale = sam.post("/posts/1/approve", data={"csrf": csrf_of(shown.text), "hash": old_hash})
    assert stale.status_code == 409 and "changed since you read it" in stale.text
    stale_changes = sam.post(
        "/posts/1/changes", data={"csrf": csrf_of(shown.text), "hash": old_hash, "reason": "x"}
    )
    assert stale_changes.status_code == 409
    with trust.sessions() as session:
        assert session.scalars(select(t.Publication)).all() == []
    # read again, ask for changes: the draft goes back to its author, audited with the reason
    fresh = sam.get("/posts/1")
    asked = sam.post(
        "/posts/1/changes",
        data={"csrf": csrf_of(fresh.text), "hash": new.content_hash, "reason": "Say which hall"},
    )
    assert asked.status_code == 200 and "changes requested by sam" in asked.text.lower()
    assert ("staff:sam", "post.changes_requested", "Say which hall") in actions(trust)


def test_checks_say_what_and_where_and_bad_input_is_refused(
    trust: Trust, client_for: Client, tmp_path: Path
) -> None:
    cara = client_for("cara")
    page = write(cara, tmp_path, alt="", no_pupils=False).text
    assert "Blocks</strong> alt_text at image 1: alt text is required" in page
    assert "Blocks</strong> pupils_declared at image 1" in page
    listed = write(cara, tmp_path, pupils=NO_PUBLICATION, no_pupils=False).text
    assert "no_publication at image 1: shows a pupil on the school&#39;s no-publication" in listed
    wrong_type = write(cara, tmp_path, image=b"GIF00 not an image").text
    assert "image_type at image 1" in wrong_type
    long_text = write(cara, tmp_path, parts=("x" * 301,)).text
    assert "length at target oak-bsky, part 1: 301 characters; Bluesky allows 300" in long_text
    past = write(cara, tmp_path, at="2026-11-20T09:00").text
    assert "publish_time at publish time" in past
    # a time inside the spring clock change does not exist: nothing is saved
    gap = write(cara, tmp_path, at="2027-03-28T01:30")
    assert gap.status_code == 400 and "does not exist in Europe/London" in gap.text
    # another school's account is refused
    other = write(cara, tmp_path, targets=("elm-masto",))
    assert other.status_code == 400 and "not one of oak" in other.text
    with trust.sessions() as session:
        assert len(session.scalars(select(t.PostDraft)).all()) == 5


def test_only_a_principal_overrides_a_warning_and_never_a_no_publication_hit(
    trust: Trust, client_for: Client, tmp_path: Path
) -> None:
    cara = client_for("cara")
    write(cara, tmp_path, parts=("Call the office on 07700 900123 to book.",))
    finding = [f for f in draft_of(trust, 1).findings if f["level"] == "warn"]
    assert [f["check"] for f in finding] == ["personal_data"]
    key = f"override:personal_data@{finding[0]['where']}"
    sam = client_for("sam")  # SLT: may approve, may not override
    shown = sam.get("/posts/1").text
    assert key not in shown
    refused = sam.post(
        "/posts/1/approve",
        data={"csrf": csrf_of(shown), "hash": draft_of(trust, 1).content_hash, key: "ok"},
    )
    assert refused.status_code == 409 and "only principal may override" in refused.text
    pat = client_for("pat")
    shown = pat.get("/posts/1").text
    assert key in shown
    blank = pat.post(
        "/posts/1/approve", data={"csrf": csrf_of(shown), "hash": draft_of(trust, 1).content_hash}
    )
    assert blank.status_code == 409 and "the checks stop this post" in blank.text
    done = pat.post(
        "/posts/1/approve",
        data={
            "csrf": csrf_of(shown),
            "hash": draft_of(trust, 1).content_hash,
            key: "the school office's own number",
        },
    )
    assert done.status_code == 200 and "Approved" in done.text
    assert any(
        a == "post.approved" and r and "the school office's own number" in r
        for _, a, r in actions(trust)
    )
    # a pupil on the no-publication list: no override offered, none accepted
    write(cara, tmp_path, pupils=NO_PUBLICATION, no_pupils=False)
    shown = pat.get("/posts/2").text
    assert "override:no_publication" not in shown
    hit = pat.post(
        "/posts/2/approve",
        data={
            "csrf": csrf_of(shown),
            "hash": draft_of(trust, 2).content_hash,
            "override:no_publication@image 1": "parent agreed",
        },
    )
    assert hit.status_code == 409 and "cannot be overridden" in hit.text
    assert draft_of(trust, 2).state == posts.DRAFT


def test_who_may_see_and_write_posts_follows_the_rules(
    trust: Trust, client_for: Client, tmp_path: Path
) -> None:
    write(client_for("cara"), tmp_path)
    moderator = client_for("morgan")
    assert moderator.get("/posts").status_code == 403
    assert moderator.get("/posts/1").status_code == 403
    assert moderator.get("/posts/new").status_code == 403
    # a leader of another school sees neither the draft nor it on the calendar
    assert client_for("elmo").get("/posts/1").status_code == 403
    # without the CSRF token nothing is written
    cara = client_for("cara")
    forged = cara.post("/posts/new", data={"school": "oak", "part": ["x"]})
    assert forged.status_code == 403 and "Form expired" in forged.text
    signed_out = TestClient(trust.app(), base_url="http://127.0.0.1")
    assert signed_out.get("/posts", follow_redirects=False).status_code == 303


def test_the_calendar_shows_the_week_in_uk_time_across_the_clock_change(
    trust: Trust, client_for: Client, tmp_path: Path
) -> None:
    cara = client_for("cara")
    write(cara, tmp_path, parts=("Winter fair",), at="2026-11-25T09:00")
    write(cara, tmp_path, parts=("Easter concert",), at="2027-03-29T18:30")
    with transaction(trust.sessions) as session:
        # the winter fair went out: it is on the calendar as published, with its link
        draft = session.get(t.PostDraft, 1)
        assert draft is not None
        draft.state = posts.PUBLISHED
        account = session.scalars(select(t.Account).where(t.Account.key == "oak-bsky")).one()
        session.add(
            t.Publication(
                draft_id=1,
                account_id=account.id,
                idempotency_key="k1",
                content_hash=draft.content_hash,
                state=posts.DONE,
                due_at=draft.publish_at,
                attempts=1,
                platform_ids=["at://x/1"],
                url="https://bsky.app/profile/oak/post/1",
                published_at=draft.publish_at,
            )
        )
    week = cara.get("/posts?week=2026-11-23").text
    assert "Week of Mon 23 Nov 2026".lower() in week.lower()
    assert "Wed 25 Nov" in week and "09:00 GMT" in week and "Winter fair" in week
    assert 'href="https://bsky.app/profile/oak/post/1"' in week and "published" in week
    assert "Easter concert" not in week
    spring = cara.get("/posts?week=2027-03-29").text
    assert "Easter concert" in spring and "18:30 BST" in spring and "Mon 29 Mar" in spring
    # the clock change weekend itself: the Sunday has 23 hours and is still one day
    change = cara.get("/posts?week=2027-03-22").text
    assert change.count("nothing planned") == 7
    # a principal may not approve their own draft (posting.self_approval is off)
    pat = client_for("pat")
    write(pat, tmp_path, parts=("Head's notice",))
    own = pat.get("/posts/3").text
    assert "Approve exactly this post" not in own and "nobody approves their own draft" in own
    # staff of another school see none of it
    assert client_for("elmo").get("/posts?week=2026-11-23").status_code == 403


class Platform:
    """A platform in memory for the web's tests (the real ones are tested in tests/posts):
    what is out, by id; every call recorded."""

    def __init__(self) -> None:
        self.out: dict[str, str] = {}
        self.calls: list[str] = []
        self.fail = False

    def publish(self, post: OutgoingPost, done: Sequence[str], progress: Progress) -> Published:
        self.calls.append(f"publish {post.key}")
        ids = list(done)
        for number, part in enumerate(post.parts[len(done) :], start=len(done)):
            ids.append(f"{post.key}/{number}")
            self.out[ids[-1]] = part
            progress(list(ids))
        return Published(tuple(ids), f"https://bsky.app/profile/oak/post/{post.serial}")

    def withdraw(self, ids: Sequence[str]) -> None:
        self.calls.append("withdraw " + ",".join(ids))
        if self.fail:
            raise PublishError("503 Service Unavailable")
        for platform_id in ids:
            self.out.pop(platform_id, None)


def approved_draft(trust: Trust, client_for: Client, tmp_path: Path) -> tuple[TestClient, str]:
    """Cara's draft 1, approved by Sam; Sam's client and the post page he sees."""
    write(client_for("cara"), tmp_path)
    sam = client_for("sam")
    shown = sam.get("/posts/1").text
    approved = sam.post(
        "/posts/1/approve", data={"csrf": csrf_of(shown), "hash": draft_of(trust, 1).content_hash}
    )
    assert approved.status_code == 200 and "Approved" in approved.text
    return sam, approved.text


def test_an_approved_post_is_cancelled_from_its_page_and_never_published(
    trust: Trust, client_for: Client, tmp_path: Path
) -> None:
    sam, page = approved_draft(trust, client_for, tmp_path)
    assert "Cancel this post" in page and "Withdraw from every platform" not in page
    # another comms officer (not the drafter, not an approver) may see it but not stop it
    pat_draft = write(client_for("pat"), tmp_path, parts=("Head's notice",))
    assert pat_draft.url.path == "/posts/2"
    cara = client_for("cara")
    others = cara.get("/posts/2").text
    assert "Cancel this post" not in others
    refused = cara.post("/posts/2/cancel", data={"csrf": csrf_of(others), "reason": "not mine"})
    assert refused.status_code == 409
    assert "only principal, slt or the drafter may cancel posts for oak" in refused.text
    # without the CSRF token, or without a reason, nothing is cancelled
    forged = sam.post("/posts/1/cancel", data={"reason": "rained off"})
    assert forged.status_code == 403 and "Form expired" in forged.text
    blank = sam.post("/posts/1/cancel", data={"csrf": csrf_of(page), "reason": "  "})
    assert blank.status_code == 409 and "give a reason" in blank.text
    assert draft_of(trust, 1).state == posts.APPROVED
    done = sam.post("/posts/1/cancel", data={"csrf": csrf_of(page), "reason": "rained off"})
    assert done.status_code == 200 and "Cancelled (1 publication(s) stopped)" in done.text
    assert "Cancel this post" not in done.text
    assert ("staff:sam", "post.cancelled", "rained off") in actions(trust)
    # the publishing job, well after the publish time, puts nothing out
    draft = draft_of(trust, 1)
    assert draft.state == posts.CANCELLED and draft.publish_at is not None
    platform = Platform()
    checker = posts.Checker.for_config(trust.config)
    later = draft.publish_at + timedelta(hours=1)
    assert posts.publish_due(trust.sessions, checker, lambda _a: platform, later) == []
    assert platform.calls == [] and platform.out == {}
    # the drafter may cancel their own draft (before it is out)
    own = client_for("pat")
    page2 = own.get("/posts/2").text
    mine = own.post("/posts/2/cancel", data={"csrf": csrf_of(page2), "reason": "superseded"})
    assert mine.status_code == 200 and draft_of(trust, 2).state == posts.CANCELLED


def test_a_published_post_is_withdrawn_from_its_page_evidence_first(
    trust: Trust, client_for: Client, tmp_path: Path
) -> None:
    platform = Platform()
    approved_draft(trust, client_for, tmp_path)
    draft = draft_of(trust, 1)
    assert draft.publish_at is not None
    checker = posts.Checker.for_config(trust.config)
    [outcome] = posts.publish_due(trust.sessions, checker, lambda _a: platform, draft.publish_at)
    assert outcome.state == posts.DONE and len(platform.out) == 2

    def client(name: str) -> TestClient:
        app = trust.app(
            post_checker=checker, media_dir=tmp_path / "media", publishers=lambda _a: platform
        )
        made = TestClient(app, base_url="http://127.0.0.1")
        assert sign_in(made, name).status_code == 303
        return made

    # the drafter (comms) may not withdraw: a withdrawal is the approvers'
    cara = client("cara")
    shown = cara.get("/posts/1").text
    assert "Withdraw from every platform" not in shown and "Cancel this post" not in shown
    refused = cara.post("/posts/1/withdraw", data={"csrf": csrf_of(shown), "reason": "typo"})
    assert refused.status_code == 409
    assert "only principal, slt may withdraw posts for oak" in refused.text
    sam = client("sam")
    page = sam.get("/posts/1").text
    assert "Withdraw from every platform" in page
    forged = sam.post("/posts/1/withdraw", data={"reason": "wrong date"})
    assert forged.status_code == 403 and "Form expired" in forged.text
    assert len(platform.out) == 2 and len(platform.calls) == 1
    platform.fail = True  # the platform is down: nothing is marked withdrawn, try again
    down = sam.post("/posts/1/withdraw", data={"csrf": csrf_of(page), "reason": "wrong date"})
    assert down.status_code == 502 and "try again" in down.text
    assert len(platform.out) == 2 and draft_of(trust, 1).state == posts.PUBLISHED
    platform.fail = False
    done = sam.post("/posts/1/withdraw", data={"csrf": csrf_of(page), "reason": "wrong date"})
    assert done.status_code == 200 and "Withdrawn from 1 account(s)" in done.text
    assert platform.out == {} and platform.calls[-1].startswith("withdraw ")
    assert draft_of(trust, 1).state == posts.WITHDRAWN
    with trust.sessions() as session:
        evidence = session.scalars(select(t.Evidence).order_by(t.Evidence.id.desc())).first()
        assert evidence is not None and evidence.captured_by == "staff:sam"
        assert evidence.snapshot["content"]["parts"] == list(draft.content["parts"])
    assert [(a, r) for _, a, r in actions(trust)][-2:] == [
        ("post.withdraw_requested", "wrong date"),
        ("post.withdrawn", "wrong date"),
    ]
    again = sam.post("/posts/1/withdraw", data={"csrf": csrf_of(page), "reason": "twice"})
    assert again.status_code == 409 and "nothing published to withdraw" in again.text


def test_a_slack_approval_stopped_by_a_warning_points_to_the_draft_page(
    trust: Trust, client_for: Client, tmp_path: Path
) -> None:
    cara = client_for("cara")
    write(cara, tmp_path, parts=("Call the office on 07700 900123 to book.",))
    write(cara, tmp_path, pupils=NO_PUBLICATION, no_pupils=False)
    checker = posts.Checker.for_config(trust.config)
    cfg = trust.config

    def people(session: Session, at: datetime) -> Any:
        return load_directory(session, cfg.routing, now=at, timezone=cfg.organisation.timezone)

    handle = button_handler(trust.sessions, people, trust.clock, checker)

    def click(draft_id: int) -> str:
        seen = draft_of(trust, draft_id).content_hash
        return handle(ButtonClick("UPAT", "post_approve", draft_id, "D0PAT", "1.0", seen))

    warned = click(1)
    assert warned.startswith("Nothing was done: the checks stop this post: personal_data")
    assert "overridden only with a reason" in warned
    assert "on the draft's page: http://monitor.oak.test/posts/1" in warned
    # a no-publication hit cannot be overridden: no link to an override that cannot be made
    listed = click(2)
    assert "no_publication at image 1" in listed and "overridden" not in listed
    assert draft_of(trust, 1).state == draft_of(trust, 2).state == posts.DRAFT
    # without a workplace address the command is named instead
    bare = posts.Checker.for_config(
        cfg.model_copy(update={"web": cfg.web.model_copy(update={"public_url": None})})
    )
    handle = button_handler(trust.sessions, people, trust.clock, bare)
    assert "with `monitor post approve 1 --override 'check@where=reason'`" in click(1)
