"""The scheduler's core (R16): drafts, checks, approvals and the publication state machine.

Every change is one transaction with its audit event. The rules themselves (checks, who may
approve, hashes) are pure functions in ``monitor.rules.posting``; this module reads files and
the database and calls them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from connectors.publishing import (
    OutgoingImage,
    OutgoingPost,
    Published,
    Publisher,
    PublishError,
)
from monitor import audit
from monitor.classify.engine import RuleEngine
from monitor.classify.severity import score_hits
from monitor.config_models import Config
from monitor.constants import AlertChannel, AlertKind, ItemKind
from monitor.outbox import NoticePayload, enqueue
from monitor.rules.posting import (
    NO_PUPILS,
    ApprovalPolicy,
    Approver,
    DraftContent,
    Finding,
    Image,
    Target,
    TextHit,
    approval_holds,
    blocking,
    file_findings,
    finding_key,
    image_findings,
    limit_findings,
    may_approve,
    may_override,
    override_refusal,
    reminder_due,
    stop_refusal,
    text_findings,
    time_findings,
)
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.storage.repo import insert_statement

log = logging.getLogger(__name__)

# draft states
DRAFT = "draft"
AWAITING = "awaiting_approval"
APPROVED = "approved"
CANCELLED = "cancelled"
PUBLISHED = "published"
WITHDRAWN = "withdrawn"
# publication states
PENDING = "pending"
PUBLISHING = "publishing"  # an attempt started: the outcome may be unknown (crash, timeout)
DONE = "published"
BLOCKED = "blocked"  # the checks just before publishing failed
FAILED = "failed"  # the platform refused it for good
PUB_CANCELLED = "cancelled"
PUB_WITHDRAWN = "withdrawn"
RETRY_BASE = timedelta(seconds=30)
RETRY_CAP = timedelta(minutes=30)
MAX_ATTEMPTS = 12
STREAM_OWN = "posts"

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


class PostError(ValueError):
    """A request the scheduler refuses, with the reason to show."""


class ChecksStop(PostError):
    """The checks stop an approval; ``overridable`` when every finding left is a warning
    (an approver allowed to override may approve it with a reason on the draft's page)."""

    def __init__(self, message: str, *, overridable: bool) -> None:
        super().__init__(message)
        self.overridable = overridable


def sniff_type(data: bytes) -> str:
    """The image type from the file's first bytes (never from its name)."""
    for signature, media_type in _SIGNATURES:
        if data.startswith(signature):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def load_image(path: str | Path, alt: str, pupils: str | None) -> Image:
    """An image as the checks see it; ``pupils`` is "no pupils" or names separated by commas."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise PostError(f"image {file} cannot be read ({exc.strerror})") from exc
    names: tuple[str, ...] = ()
    declared = pupils is not None and pupils.strip() != ""
    if declared and pupils is not None and pupils.strip().casefold() != NO_PUPILS:
        names = tuple(n.strip() for n in pupils.split(",") if n.strip())
    return Image(
        path=str(file.resolve()),
        alt=alt,
        pupils=names,
        declared=declared,
        media_type=sniff_type(data),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def read_name_list(path: str | None) -> list[str]:
    """The no-publication list: one name a line, ``#`` comments. A configured file that cannot
    be read is an error (publishing without the list would break Coast's image policy)."""
    if not path:
        return []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise PostError(f"the no-publication list {path} cannot be read ({exc})") from exc
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


# ------------------------------------------------------------- checks


ModelScores = Callable[[Sequence[str]], Sequence[Mapping[str, float]] | None]


@dataclass
class Checker:
    """Runs every R16 check on a draft's content: the text through the classifier's rule engine
    and, when one is given, the toxicity model (``score``: each text's scores, or None while the
    model is down; the rules still run then)."""

    config: Config
    engines: dict[str, RuleEngine]
    score: ModelScores | None = None

    @classmethod
    def for_config(
        cls, config: Config, names: Any = None, *, score: ModelScores | None = None
    ) -> Checker:
        """One rule engine per school, with the protected names file when configured."""
        if names is None and config.classifier.protected_names_file:
            from monitor.classify.personal_data import ProtectedNames

            names = ProtectedNames(config.classifier.protected_names_file)
        engines = {s.key: RuleEngine.for_school(s, names) for s in config.schools}
        return cls(config, engines, score)

    @classmethod
    def with_model(cls, config: Config, pipeline: Any) -> Checker:
        """The checks with the classifier pipeline's toxicity model (the worker's own, so the
        model is loaded once per process) and its rules and protected names."""
        return cls(
            config,
            {s.key: pipeline.engine(s.key) for s in config.schools},
            pipeline.model_scores,
        )

    def targets(self, keys: Sequence[str], school: str) -> list[Target]:
        """The accounts ``keys`` (each must be one of ``school``'s)."""
        out = []
        for key in keys:
            account = next((a for a in self.config.accounts if a.key == key), None)
            if account is None or account.school != school:
                raise PostError(f"{key!r} is not one of {school}'s accounts")
            out.append(
                Target(
                    key=key,
                    platform=account.platform.value,
                    mastodon_max_chars=self.config.posting.mastodon_max_chars,
                )
            )
        return out

    def run(self, content: DraftContent, school: str, now: datetime) -> list[Finding]:
        """Every finding for ``content``: blockers first, in the order of the draft."""
        engine = self.engines[school]
        hits: list[TextHit] = []
        texts = [*content.parts, content.title or ""]
        for index, part in enumerate(texts):
            for match, _severity in engine.run(part):
                hits.append(
                    TextHit(index, match.rule_id, match.category.value, match.matched, match.reason)
                )
        scored = self.score([engine.for_model(p) for p in texts]) if self.score else None
        for index, scores in enumerate(scored or ()):
            if not texts[index].strip():
                continue
            thresholds = self.config.classifier.thresholds
            for rule, value, threshold in score_hits(scores, thresholds):
                hits.append(
                    TextHit(
                        index,
                        rule.rule_id,
                        rule.category.value,
                        "",
                        f"{rule.reason} ({rule.label} {value:.2f} >= {threshold:.2f})",
                        from_model=True,
                    )
                )
        findings = text_findings(hits)
        findings += image_findings(
            content.images, read_name_list(self.config.posting.no_publication_file)
        )
        findings += file_findings(content.images, self.config.posting.max_image_bytes)
        findings += limit_findings(content, self.targets(content.targets, school))
        findings += time_findings(content.publish_at, now)
        return findings


# ------------------------------------------------------------- drafts and approval


def policy_for(config: Config, school: str) -> ApprovalPolicy:
    """The school's approval policy from ``posting``."""
    roles = config.posting.approvers_by_school.get(school, config.posting.approvers)
    return ApprovalPolicy(
        frozenset(roles), config.posting.self_approval, frozenset(config.posting.overriders)
    )


def approver_of(config: Config, staff_id: str) -> Approver:
    """``staff_id`` as the approval rules see them (unknown or inactive: refused)."""
    person = next((s for s in config.staff if s.id == staff_id), None)
    if person is None or not person.active:
        raise PostError(f"no active member of staff {staff_id!r}")
    return Approver(person.id, frozenset(person.roles), frozenset(person.schools))


def _school(session: Session, key: str) -> t.School:
    school = session.scalar(select(t.School).where(t.School.key == key))
    if school is None:
        raise PostError(f"no school {key!r}")
    return school


def _draft(session: Session, draft_id: int, *, lock: bool = True) -> t.PostDraft:
    query = select(t.PostDraft).where(t.PostDraft.id == draft_id)
    if lock:
        query = query.with_for_update()
    draft = session.scalar(query)
    if draft is None:
        raise PostError(f"no draft {draft_id}")
    return draft


def school_key(session: Session, draft: t.PostDraft) -> str:
    """The key of the draft's school."""
    school = session.get(t.School, draft.school_id)
    assert school is not None
    return school.key


def create_draft(
    session: Session,
    checker: Checker,
    *,
    school: str,
    staff_id: str,
    content: DraftContent,
    now: datetime,
) -> t.PostDraft:
    """A new draft; its checks are run and stored (bad input is told now, not at publishing)."""
    approver_of(checker.config, staff_id)  # the drafter must be staff in post
    findings = checker.run(content, school, now)
    draft = t.PostDraft(
        school_id=_school(session, school).id,
        drafted_by=staff_id,
        state=DRAFT,
        content=content.to_json(),
        content_hash=content.content_hash(),
        publish_at=content.publish_at,
        findings=[f.to_json() for f in findings],
        created_at=now,
        updated_at=now,
    )
    session.add(draft)
    session.flush()
    audit.record(
        session,
        at=now,
        actor=f"staff:{staff_id}",
        action="post.drafted",
        subject=f"post:{draft.id}",
        details={"hash": draft.content_hash, "targets": list(content.targets)},
    )
    return draft


def edit_draft(
    session: Session,
    checker: Checker,
    draft_id: int,
    *,
    staff_id: str,
    content: DraftContent,
    now: datetime,
) -> t.PostDraft:
    """Replace the content: any approval is void (the hash changes) and it waits again."""
    _lock_publications(session, draft_id)
    draft = _draft(session, draft_id)
    if draft.state in (PUBLISHED, WITHDRAWN, CANCELLED):
        raise PostError(f"draft {draft_id} is {draft.state}; it cannot be changed")
    if _publications_started(session, draft.id):
        raise PostError(f"draft {draft_id} is being published; cancel or withdraw it instead")
    old = draft.content_hash
    school = school_key(session, draft)
    findings = checker.run(content, school, now)
    draft.content = content.to_json()
    draft.content_hash = content.content_hash()
    draft.publish_at = content.publish_at
    draft.findings = [f.to_json() for f in findings]
    draft.updated_at = now
    if draft.content_hash != old and draft.state == APPROVED:
        draft.state = DRAFT
        _cancel_pending(session, draft.id)
    audit.record(
        session,
        at=now,
        actor=f"staff:{staff_id}",
        action="post.edited",
        subject=f"post:{draft.id}",
        details={"old_hash": old, "hash": draft.content_hash},
    )
    return draft


def _lock_publications(session: Session, draft_id: int) -> None:
    session.scalars(
        select(t.Publication.id)
        .where(t.Publication.draft_id == draft_id)
        .order_by(t.Publication.id)
        .with_for_update()
    ).all()


def _publications_started(session: Session, draft_id: int) -> bool:
    states = session.scalars(
        select(t.Publication.state).where(t.Publication.draft_id == draft_id)
    ).all()
    return any(s in (PUBLISHING, DONE) for s in states)


def _cancel_pending(session: Session, draft_id: int) -> int:
    result = session.execute(
        update(t.Publication)
        .where(t.Publication.draft_id == draft_id, t.Publication.state == PENDING)
        .values(state=PUB_CANCELLED)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def approvers_for(config: Config, school: str, drafted_by: str) -> list[str]:
    """The staff ids who may approve ``school``'s post by ``drafted_by``."""
    policy = policy_for(config, school)
    out = []
    for person in config.staff:
        if not person.active:
            continue
        who = Approver(person.id, frozenset(person.roles), frozenset(person.schools))
        if may_approve(policy, who, school=school, drafted_by=drafted_by) is None:
            out.append(person.id)
    return out


def _request_text(
    draft: t.PostDraft, content: DraftContent, school: str, reminder: bool, page: str | None
) -> str:
    lines = [
        ("Reminder: a" if reminder else "A")
        + f" post for {school} is waiting for your approval (draft {draft.id}, by "
        f"{draft.drafted_by}).",
        "Targets: " + ", ".join(content.targets),
        "When: " + (draft.publish_at.isoformat() if draft.publish_at else "as soon as approved"),
    ]
    for number, part in enumerate(content.parts, 1):
        lines.append(f"Part {number}: {part}")
    for number, image in enumerate(content.images, 1):
        shown = ", ".join(image.pupils) or NO_PUPILS
        lines.append(f"Image {number}: alt {image.alt!r}; pupils: {shown}")
    if draft.findings:
        lines.append("Checks:")
        lines.extend(
            f"- {f['level']} {f['check']} at {f['where']}: {f['message']}" for f in draft.findings
        )
    else:
        lines.append("Checks: all passed.")
    if page:
        lines.append(f"Read it, approve it or request changes: {page}")
    lines.append(
        f"Approve: monitor post approve {draft.id} --as YOU   "
        f"Request changes: monitor post reject {draft.id} --as YOU --reason ..."
    )
    return "\n".join(lines)


def submit(
    session: Session, config: Config, draft_id: int, *, staff_id: str, now: datetime
) -> list[str]:
    """Ask the approvers (Slack DM and email, through the outbox); returns who was asked."""
    draft = _draft(session, draft_id)
    if draft.state not in (DRAFT, AWAITING):
        raise PostError(f"draft {draft_id} is {draft.state}")
    school = school_key(session, draft)
    who = approvers_for(config, school, draft.drafted_by)
    if not who:
        raise PostError(f"nobody may approve {school}'s posts: check posting.approvers")
    draft.state = AWAITING
    draft.submitted_at = now
    draft.updated_at = now
    _notify_approvers(session, config, draft, who, now, reminder=False)
    audit.record(
        session,
        at=now,
        actor=f"staff:{staff_id}",
        action="post.submitted",
        subject=f"post:{draft.id}",
        details={"hash": draft.content_hash, "approvers": who},
    )
    return who


def _notify_approvers(
    session: Session,
    config: Config,
    draft: t.PostDraft,
    who: Sequence[str],
    now: datetime,
    *,
    reminder: bool,
) -> None:
    content = DraftContent.from_json(draft.content)
    school = school_key(session, draft)
    from monitor.web.links import base_url, post_url

    text = _request_text(draft, content, school, reminder, post_url(base_url(config), draft.id))
    stamp = now.strftime("%Y%m%dT%H%M") if reminder else "request"
    for staff_id in who:
        person = config.staff_member(staff_id)
        base = f"post:{draft.id}:{draft.content_hash[:16]}:{stamp}:{staff_id}"
        payload: NoticePayload = {
            "text": text,
            "subject": f"Post for {school} awaiting approval",
            "notice": True,
        }
        if person.slack_user_id:
            enqueue(
                session,
                key=base + ":slack",
                channel=AlertChannel.SLACK,
                target=person.slack_user_id,
                kind=AlertKind.POST_APPROVAL,
                now=now,
                payload={
                    **payload,
                    "blocks": approval_blocks(text, draft.id, draft.content_hash),
                },
            )
        if person.email:
            enqueue(
                session,
                key=base + ":email",
                channel=AlertChannel.EMAIL,
                target=person.email,
                kind=AlertKind.POST_APPROVAL,
                now=now,
                payload=payload,
            )


def approval_blocks(text: str, draft_id: int, content_hash: str) -> list[dict[str, Any]]:
    """The Slack message: the request as plain text, then Approve / Request changes buttons
    bound to the content hash the approver is shown (a changed draft refuses the click)."""
    value = f"{draft_id}:{content_hash}"
    return [
        {"type": "section", "text": {"type": "plain_text", "text": text[:2900] or "…"}},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "post:approve",
                    "value": value,
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Approve"},
                },
                {
                    "type": "button",
                    "action_id": "post:changes",
                    "value": value,
                    "text": {"type": "plain_text", "text": "Request changes"},
                },
            ],
        },
    ]


def remind_waiting(session: Session, config: Config, now: datetime) -> int:
    """Remind the approvers of drafts waiting longer than ``approval_reminder_after``."""
    after = timedelta(seconds=config.posting.approval_reminder_after)
    count = 0
    for draft in session.scalars(select(t.PostDraft).where(t.PostDraft.state == AWAITING)):
        if draft.submitted_at is None or not reminder_due(
            draft.submitted_at, draft.reminded_at, now, after
        ):
            continue
        school = school_key(session, draft)
        _notify_approvers(
            session,
            config,
            draft,
            approvers_for(config, school, draft.drafted_by),
            now,
            reminder=True,
        )
        draft.reminded_at = now
        count += 1
    return count


def approve(
    session: Session,
    checker: Checker,
    draft_id: int,
    *,
    staff_id: str,
    now: datetime,
    overrides: Mapping[str, str] | None = None,
    expected_hash: str | None = None,
) -> list[t.Publication]:
    """Approve exactly the current content; one publication per target is made due.

    ``overrides`` maps a warning's key (``check@where``) to the approver's reason; a blocker
    cannot be overridden. ``expected_hash`` (from what the approver saw) must still match.
    """
    overrides = dict(overrides or {})
    draft = _draft(session, draft_id)
    if draft.state not in (DRAFT, AWAITING):
        raise PostError(f"draft {draft_id} is {draft.state}; nothing to approve")
    if expected_hash is not None and expected_hash != draft.content_hash:
        raise PostError(f"draft {draft_id} changed since you read it; read it again")
    school = school_key(session, draft)
    policy = policy_for(checker.config, school)
    who = approver_of(checker.config, staff_id)
    refusal = may_approve(policy, who, school=school, drafted_by=draft.drafted_by)
    if refusal is None and overrides:
        refusal = override_refusal(policy, who)
    if refusal:
        raise PostError(refusal)
    content = DraftContent.from_json(draft.content)
    findings = checker.run(content, school, now)
    draft.findings = [f.to_json() for f in findings]
    _check_overrides(findings, overrides)
    session.add(
        t.PostApproval(
            draft_id=draft.id,
            decided_by=staff_id,
            decision="approved",
            content_hash=draft.content_hash,
            overrides=overrides,
            decided_at=now,
        )
    )
    draft.state = APPROVED
    draft.updated_at = now
    due = draft.publish_at or now
    made = [_make_due(session, draft, key, due) for key in content.targets]
    session.flush()
    audit.record(
        session,
        at=now,
        actor=f"staff:{staff_id}",
        action="post.approved",
        subject=f"post:{draft.id}",
        reason="; ".join(f"{k}: {v}" for k, v in overrides.items()) or None,
        details={"hash": draft.content_hash, "overrides": overrides, "due": due.isoformat()},
    )
    return made


def _check_overrides(findings: Sequence[Finding], overrides: Mapping[str, str]) -> None:
    """Raise PostError unless each override names a warning with a reason and no blocker is left."""
    by_key = {finding_key(f): f for f in findings}
    for key in overrides:
        found = by_key.get(key)
        if found is None:
            raise PostError(f"no finding {key!r} to override")
        if not may_override(found):
            raise PostError(f"{key} cannot be overridden: {found.message}")
        if not overrides[key].strip():
            raise PostError(f"give a reason to override {key}")
    stopping = blocking(findings, overrides)
    if stopping:
        raise ChecksStop(
            "the checks stop this post: "
            + "; ".join(f"{f.check} at {f.where}: {f.message}" for f in stopping),
            overridable=all(may_override(f) for f in stopping),
        )


def _make_due(session: Session, draft: t.PostDraft, key: str, due: datetime) -> t.Publication:
    """The approved draft's publication on account ``key``, pending from ``due``."""
    account = session.scalar(select(t.Account).where(t.Account.key == key))
    if account is None:
        raise PostError(f"no account {key!r}")
    existing = session.scalar(
        select(t.Publication).where(
            t.Publication.draft_id == draft.id, t.Publication.account_id == account.id
        )
    )
    if existing is not None:
        if existing.state in (PUBLISHING, DONE):
            raise PostError(f"draft {draft.id} is already out on {key}")
        if existing.content_hash != draft.content_hash:
            # other content: a new key, and nothing of the old attempt is resumed
            existing.idempotency_key = _key(draft, account)
            existing.platform_ids = []
            existing.attempts = 0
            existing.started_at = None
        existing.state = PENDING
        existing.last_error = None
        existing.content_hash = draft.content_hash
        existing.due_at = due
        existing.next_attempt_at = None
        return existing
    publication = t.Publication(
        draft_id=draft.id,
        account_id=account.id,
        idempotency_key=_key(draft, account),
        content_hash=draft.content_hash,
        state=PENDING,
        due_at=due,
        attempts=0,
        platform_ids=[],
    )
    session.add(publication)
    return publication


def _key(draft: t.PostDraft, account: t.Account) -> str:
    return f"post-{draft.id}-{account.id}-{draft.content_hash[:16]}"


def reject(
    session: Session, config: Config, draft_id: int, *, staff_id: str, reason: str, now: datetime
) -> None:
    """Request changes: the draft goes back to its author."""
    draft = _draft(session, draft_id)
    if draft.state not in (DRAFT, AWAITING):
        raise PostError(f"draft {draft_id} is {draft.state}")
    school = school_key(session, draft)
    refusal = may_approve(
        policy_for(config, school),
        approver_of(config, staff_id),
        school=school,
        drafted_by="",  # asking for changes to your own draft is fine
    )
    if refusal:
        raise PostError(refusal)
    session.add(
        t.PostApproval(
            draft_id=draft.id,
            decided_by=staff_id,
            decision="changes_requested",
            content_hash=draft.content_hash,
            reason=reason,
            overrides={},
            decided_at=now,
        )
    )
    draft.state = DRAFT
    draft.updated_at = now
    audit.record(
        session,
        at=now,
        actor=f"staff:{staff_id}",
        action="post.changes_requested",
        subject=f"post:{draft.id}",
        reason=reason,
        details={"hash": draft.content_hash},
    )


def stopping_refusal(
    config: Config, school: str, staff_id: str, drafted_by: str, *, published: bool
) -> str | None:
    """Why ``staff_id`` may not cancel (``published`` False) or withdraw ``school``'s post by
    ``drafted_by``; None if they may (``rules.posting.stop_refusal``)."""
    try:
        who = approver_of(config, staff_id)
    except PostError as exc:
        return str(exc)
    return stop_refusal(
        policy_for(config, school), who, school=school, drafted_by=drafted_by, published=published
    )


def _check_stop(
    session: Session,
    config: Config,
    draft: t.PostDraft,
    *,
    staff_id: str,
    reason: str,
    published: bool,
) -> None:
    """Raise PostError unless ``staff_id`` may stop ``draft`` and says why (it is audited)."""
    if not reason.strip():
        raise PostError("give a reason (it is audited)")
    school = school_key(session, draft)
    refusal = stopping_refusal(config, school, staff_id, draft.drafted_by, published=published)
    if refusal:
        raise PostError(refusal)


def cancel(
    session: Session, config: Config, draft_id: int, *, staff_id: str, reason: str, now: datetime
) -> int:
    """Stop a draft; returns how many publications were stopped. One already under way is not
    stopped (the platform may have it): withdraw it once it is out."""
    # the publications are locked before the draft, in the order the publishing job locks them,
    # so a claim either finished first (and cancelling is refused) or sees the cancellation
    _lock_publications(session, draft_id)
    draft = _draft(session, draft_id)
    _check_stop(session, config, draft, staff_id=staff_id, reason=reason, published=False)
    if draft.state in (PUBLISHED, WITHDRAWN, CANCELLED):
        raise PostError(f"draft {draft_id} is {draft.state}")
    if _publications_started(session, draft.id):
        raise PostError(f"draft {draft_id} is being published; withdraw it once it is out")
    stopped = _cancel_pending(session, draft.id)
    draft.state = CANCELLED
    draft.updated_at = now
    audit.record(
        session,
        at=now,
        actor=f"staff:{staff_id}",
        action="post.cancelled",
        subject=f"post:{draft.id}",
        reason=reason,
        details={"publications_stopped": stopped},
    )
    return stopped


# ------------------------------------------------------------- publishing


PublisherFor = Callable[[t.Account], Publisher]


@dataclass(frozen=True)
class PublishOutcome:
    """What happened to one publication in one pass."""

    publication_id: int
    state: str
    detail: str = ""


def due_publications(session: Session, now: datetime, limit: int = 50) -> list[int]:
    """Publications to attempt now: pending or interrupted, due, and not waiting for a retry."""
    rows = session.scalars(
        select(t.Publication.id)
        .where(t.Publication.state.in_([PENDING, PUBLISHING]), t.Publication.due_at <= now)
        .order_by(t.Publication.due_at, t.Publication.id)
        .limit(limit * 4)
    ).all()
    out = []
    for publication_id in rows:
        publication = session.get(t.Publication, publication_id)
        assert publication is not None
        if publication.next_attempt_at is None or publication.next_attempt_at <= now:
            out.append(publication_id)
    return out[:limit]


def publish_due(
    sessions: sessionmaker[Session],
    checker: Checker,
    publisher_for: PublisherFor,
    now: datetime,
    *,
    limit: int = 50,
) -> list[PublishOutcome]:
    """One pass of the scheduler job: every due publication, exactly once each."""
    with sessions() as session:
        ids = due_publications(session, now, limit)
    return [publish_one(sessions, checker, publisher_for, i, now) for i in ids]


def _backoff(attempts: int) -> timedelta:
    wait: timedelta = RETRY_BASE * (2 ** max(0, attempts - 1))
    return min(RETRY_CAP, wait)


def _publish_problems(
    session: Session,
    checker: Checker,
    publication: t.Publication,
    draft: t.PostDraft,
    content: DraftContent,
    *,
    now: datetime,
) -> list[str]:
    """Why ``publication`` must not go out now: the draft's state, the approval, the checks."""
    approval = session.scalar(
        select(t.PostApproval)
        .where(t.PostApproval.draft_id == draft.id, t.PostApproval.decision == "approved")
        .order_by(t.PostApproval.id.desc())
        .limit(1)
    )
    school = school_key(session, draft)
    problems: list[str] = []
    if draft.state not in (APPROVED, PUBLISHED):
        problems.append(f"the draft is {draft.state}")
    holds = approval_holds(
        approval.content_hash if approval else None, draft.content_hash
    ) and approval_holds(publication.content_hash, draft.content_hash)
    if not holds:
        problems.append("the approval does not cover this content")
    if publication.state == PENDING:
        # the checks again, just before publishing (a name may have joined a list since);
        # the publish time itself is now due, so it is not re-checked
        findings = checker.run(dataclasses.replace(content, publish_at=None), school, now)
        waived = approval.overrides if approval else {}
        problems.extend(f"{f.check} at {f.where}: {f.message}" for f in blocking(findings, waived))
    return problems


def _publish_failed(
    sessions: sessionmaker[Session],
    publication_id: int,
    exc: PublishError | OSError,
    *,
    now: datetime,
) -> PublishOutcome:
    """Record a failed attempt: retried later, or failed for good (permanent, or too many)."""
    permanent = isinstance(exc, PublishError) and exc.permanent
    with transaction(sessions) as session:
        row = session.get(t.Publication, publication_id)
        assert row is not None
        row.last_error = str(exc)
        if permanent or row.attempts >= MAX_ATTEMPTS:
            row.state = FAILED
            audit.record(
                session,
                at=now,
                actor="system:scheduler",
                action="post.failed",
                subject=f"post:{row.draft_id}",
                details={"publication": row.id, "error": str(exc)},
            )
        else:
            row.next_attempt_at = now + _backoff(row.attempts)
        return PublishOutcome(publication_id, row.state, str(exc))


def publish_one(
    sessions: sessionmaker[Session],
    checker: Checker,
    publisher_for: PublisherFor,
    publication_id: int,
    now: datetime,
) -> PublishOutcome:
    """Claim, re-check, publish and record one publication.

    The claim (pending -> publishing) commits before the platform is called, so a crash leaves
    ``publishing``: the next attempt resumes with the same key and the parts already out, and
    cancelling is refused from then on. Nothing is published unless the approval still holds
    for exactly the content and the checks pass again now.
    """
    with transaction(sessions) as session:
        publication = session.scalar(
            select(t.Publication).where(t.Publication.id == publication_id).with_for_update()
        )
        if publication is None or publication.state not in (PENDING, PUBLISHING):
            return PublishOutcome(publication_id, publication.state if publication else "gone")
        draft = _draft(session, publication.draft_id)
        content = DraftContent.from_json(draft.content)
        problems = _publish_problems(session, checker, publication, draft, content, now=now)
        if problems:
            publication.state = BLOCKED
            publication.last_error = "; ".join(problems)
            audit.record(
                session,
                at=now,
                actor="system:scheduler",
                action="post.blocked",
                subject=f"post:{draft.id}",
                details={"publication": publication.id, "problems": problems},
            )
            return PublishOutcome(publication.id, BLOCKED, publication.last_error)
        retry = publication.state == PUBLISHING or publication.attempts > 0
        publication.state = PUBLISHING
        publication.attempts += 1
        publication.started_at = publication.started_at or now
        account = session.get(t.Account, publication.account_id)
        assert account is not None
        outgoing = OutgoingPost(
            key=publication.idempotency_key,
            serial=publication.id,
            parts=tuple(content.full_text(i) for i in range(len(content.parts))),
            images=tuple(
                OutgoingImage(Path(i.path).read_bytes(), i.media_type, i.alt)
                for i in content.images
            ),
            title=content.title,
            created_at=publication.started_at,
            retry=retry,
        )
        done = [str(i) for i in publication.platform_ids]
        session.expunge(account)

    def progress(ids: Sequence[str]) -> None:
        with transaction(sessions) as s:
            row = s.get(t.Publication, publication_id)
            if row is not None:
                row.platform_ids = list(ids)

    try:
        published = publisher_for(account).publish(outgoing, done, progress)
    except (PublishError, OSError) as exc:
        return _publish_failed(sessions, publication_id, exc, now=now)
    with transaction(sessions) as session:
        row = session.get(t.Publication, publication_id)
        assert row is not None
        row.state = DONE
        row.platform_ids = list(published.ids)
        row.url = published.url
        row.published_at = now
        row.last_error = None
        row.watch_until = now + timedelta(seconds=checker.config.posting.reply_watch)
        row.item_id = _own_item(session, row, account, content, published, now=now)
        draft = _draft(session, row.draft_id)
        states = session.scalars(
            select(t.Publication.state).where(t.Publication.draft_id == draft.id)
        ).all()
        if all(s == DONE for s in states):
            draft.state = PUBLISHED
        audit.record(
            session,
            at=now,
            actor="system:scheduler",
            action="post.published",
            subject=f"post:{row.draft_id}",
            details={
                "publication": row.id,
                "account": account.key,
                "ids": list(published.ids),
                "url": published.url,
                "hash": row.content_hash,
            },
        )
    return PublishOutcome(publication_id, DONE, published.url)


def _own_item(
    session: Session,
    publication: t.Publication,
    account: t.Account,
    content: DraftContent,
    published: Published,
    *,
    now: datetime,
) -> int | None:
    """The published post as an own item at once (its replies are then watched)."""
    statement = (
        insert_statement(session, t.Item)
        .values(
            platform=account.platform,
            platform_id=published.root_id,
            account_id=account.id,
            stream=STREAM_OWN,
            kind=ItemKind.POST.value,
            url=published.url,
            author_id=account.platform_user_id or account.handle,
            author_handle=account.handle,
            text=content.full_text(0),
            created_at=now,
            seen_at=now,
            root_id=published.root_id,
            is_own=True,
            raw={"publication": publication.id, "parts": list(published.ids)},
        )
        .on_conflict_do_nothing(index_elements=["platform", "platform_id"])
    )
    session.execute(statement)
    return session.scalar(
        select(t.Item.id).where(
            t.Item.platform == account.platform, t.Item.platform_id == published.root_id
        )
    )


def watched_threads(session: Session, now: datetime) -> list[tuple[str, str]]:
    """(account key, own item's platform id) of posts published within ``reply_watch``, oldest
    first: their replies are read every ``reply_poll_interval``."""
    rows = session.execute(
        select(t.Account.key, t.Item.platform_id)
        .select_from(t.Publication)
        .join(t.Account, t.Account.id == t.Publication.account_id)
        .join(t.Item, t.Item.id == t.Publication.item_id)
        .where(t.Publication.state == DONE, t.Publication.watch_until > now)
        .order_by(t.Publication.published_at, t.Publication.id)
    ).all()
    return [(key, str(platform_id)) for key, platform_id in rows]


def withdraw(
    sessions: sessionmaker[Session],
    config: Config,
    publisher_for: PublisherFor,
    draft_id: int,
    *,
    staff_id: str,
    reason: str,
    now: datetime,
) -> int:
    """Take a published post down: the evidence first (what was out, where), then delete."""
    with transaction(sessions) as session:
        draft = _draft(session, draft_id)
        _check_stop(session, config, draft, staff_id=staff_id, reason=reason, published=True)
        rows = session.scalars(
            select(t.Publication).where(
                t.Publication.draft_id == draft_id, t.Publication.state == DONE
            )
        ).all()
        if not rows:
            raise PostError(f"draft {draft_id} has nothing published to withdraw")
        snapshot = {
            "draft": draft.id,
            "content": draft.content,
            "hash": draft.content_hash,
            "publications": [
                {"id": p.id, "account_id": p.account_id, "ids": p.platform_ids, "url": p.url}
                for p in rows
            ],
        }
        digest = hashlib.sha256(repr(sorted(snapshot.items())).encode()).hexdigest()
        session.add(
            t.Evidence(
                item_id=rows[0].item_id,
                captured_at=now,
                captured_by=f"staff:{staff_id}",
                snapshot=snapshot,
                sha256=digest,
            )
        )
        audit.record(
            session,
            at=now,
            actor=f"staff:{staff_id}",
            action="post.withdraw_requested",
            subject=f"post:{draft.id}",
            reason=reason,
            details={"evidence_sha256": digest},
        )
        targets = [(p.id, session.get(t.Account, p.account_id), list(p.platform_ids)) for p in rows]
        for _, account, _ in targets:
            if account is not None:
                session.expunge(account)
    count = 0
    for publication_id, account, ids in targets:
        assert account is not None
        publisher_for(account).withdraw(ids)
        with transaction(sessions) as session:
            row = session.get(t.Publication, publication_id)
            assert row is not None
            row.state = PUB_WITHDRAWN
            row.withdrawn_at = now
            audit.record(
                session,
                at=now,
                actor=f"staff:{staff_id}",
                action="post.withdrawn",
                subject=f"post:{row.draft_id}",
                reason=reason,
                details={"publication": row.id, "account": account.key, "ids": ids},
            )
            count += 1
    with transaction(sessions) as session:
        draft = _draft(session, draft_id)
        draft.state = WITHDRAWN
        draft.updated_at = now
    return count


# ------------------------------------------------------------- the calendar


@dataclass(frozen=True)
class CalendarEntry:
    """One post on the calendar: when it goes (or went) out and where."""

    draft_id: int
    school: str
    state: str
    when: datetime | None  # published, else scheduled; None: as soon as approved
    published: bool
    first_part: str
    targets: tuple[tuple[str, str, str | None], ...]  # (account key, state, url)


def calendar(
    session: Session, start: datetime, end: datetime, schools: Sequence[str] | None
) -> list[CalendarEntry]:
    """Posts scheduled or published in [start, end), of ``schools`` (None: every school),
    in time order (cancelled drafts are left out)."""
    query = (
        select(t.PostDraft, t.School.key)
        .join(t.School, t.School.id == t.PostDraft.school_id)
        .where(t.PostDraft.state != CANCELLED)
    )
    if schools is not None:
        query = query.where(t.School.key.in_(list(schools)))
    entries: list[CalendarEntry] = []
    for draft, key in session.execute(query.order_by(t.PostDraft.id)):
        rows = session.execute(
            select(t.Publication, t.Account.key)
            .join(t.Account, t.Account.id == t.Publication.account_id)
            .where(t.Publication.draft_id == draft.id)
            .order_by(t.Publication.id)
        ).all()
        out = [p.published_at for p, _ in rows if p.published_at is not None]
        when = min(out) if out else draft.publish_at
        if when is None or not start <= when < end:
            continue
        content = DraftContent.from_json(draft.content)
        entries.append(
            CalendarEntry(
                draft_id=draft.id,
                school=key,
                state=draft.state,
                when=when,
                published=bool(out),
                first_part=content.parts[0] if content.parts else "",
                targets=tuple((k, p.state, p.url) for p, k in rows)
                or tuple((k, "not approved", None) for k in content.targets),
            )
        )
    return sorted(entries, key=lambda e: (e.when or start, e.draft_id))


def approval_refusal(config: Config, school: str, staff_id: str, drafted_by: str) -> str | None:
    """Why ``staff_id`` may not approve ``school``'s draft by ``drafted_by``; None if they may."""
    try:
        who = approver_of(config, staff_id)
    except PostError as exc:
        return str(exc)
    return may_approve(policy_for(config, school), who, school=school, drafted_by=drafted_by)


def override_allowed(config: Config, school: str, staff_id: str) -> bool:
    """Whether ``staff_id`` may override a warning on ``school``'s posts."""
    try:
        who = approver_of(config, staff_id)
    except PostError:
        return False
    return override_refusal(policy_for(config, school), who) is None
