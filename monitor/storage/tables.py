"""The database schema (SQLAlchemy 2.x declarative models)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from monitor.constants import CaseState, Category, Severity
from monitor.storage.types import BigIntPK, JSONDoc, UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with stable constraint names (needed for migrations)."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONDoc,
        list[Any]: JSONDoc,
    }


# ------------------------------------------------------------- registry


class School(Base):
    __tablename__ = "schools"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    archived_at: Mapped[datetime | None]


class Staff(Base):
    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    slack_user_id: Mapped[str | None] = mapped_column(String(32), index=True)
    roles: Mapped[list[Any]] = mapped_column(default=list)
    schools: Mapped[list[Any]] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    leaving_on: Mapped[date | None] = mapped_column(Date)
    successor_key: Mapped[str | None] = mapped_column(String(64))
    left_at: Mapped[datetime | None]  # when the handover ran
    created_at: Mapped[datetime]
    archived_at: Mapped[datetime | None]


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("platform", "handle"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"))
    platform: Mapped[str] = mapped_column(String(32))
    handle: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    linked_email: Mapped[str | None] = mapped_column(String(320))
    poll_interval_s: Mapped[float] = mapped_column(Float)
    gap_limit_s: Mapped[float] = mapped_column(Float)
    watch_mentions: Mapped[bool] = mapped_column(Boolean, default=True)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # names of the credentials and where they live; never the values
    credential_refs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    platform_user_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    archived_at: Mapped[datetime | None]

    school: Mapped[School] = relationship()


class AccountAdmin(Base):
    """Who administers an account; rows are closed (removed_at), never deleted."""

    __tablename__ = "account_admins"
    __table_args__ = (Index("ix_account_admins_active", "account_id", "removed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    added_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]
    source: Mapped[str] = mapped_column(String(32), default="config")  # config | handover

    staff: Mapped[Staff] = relationship()


# ------------------------------------------------------------- polling


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("platform", "platform_id"),
        Index("ix_items_account_seen", "account_id", "seen_at"),
        Index("ix_items_author", "platform", "author_handle"),
        Index("ix_items_hidden_at", "hidden_at"),  # digest: hidden/removed in a week
        Index("ix_items_parent", "platform", "parent_id"),  # a reply's siblings (case page)
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    platform_id: Mapped[str] = mapped_column(String(512))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    stream: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(Text)
    author_id: Mapped[str] = mapped_column(String(512))
    author_handle: Mapped[str] = mapped_column(String(512))
    author_name: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    seen_at: Mapped[datetime]
    parent_id: Mapped[str | None] = mapped_column(String(512))
    root_id: Mapped[str | None] = mapped_column(String(512), index=True)
    is_own: Mapped[bool] = mapped_column(Boolean, default=False)
    engagement: Mapped[dict[str, Any]] = mapped_column(default=dict)
    raw: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # visibility as last observed: visible, hidden, removed, deleted, not_found
    visibility: Mapped[str] = mapped_column(String(16), default="visible")
    hidden_at: Mapped[datetime | None]
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)


class QuarantinedItem(Base):
    """An item the database refused even alone: kept here so the cursor can move on.

    ``platform_id``, ``error`` and ``payload`` are escaped (ASCII) text, storable
    whatever the platform sent; ``payload`` is the whole item as JSON, raw included.
    ``case_id`` is the IT case that reports it (None until one is opened).
    """

    __tablename__ = "quarantined_items"
    __table_args__ = (Index("ix_quarantined_items_platform_id", "platform", "platform_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    stream: Mapped[str] = mapped_column(String(32))
    platform: Mapped[str] = mapped_column(String(32))
    platform_id: Mapped[str] = mapped_column(String(512))
    error: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    quarantined_at: Mapped[datetime]
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)


class Cursor(Base):
    __tablename__ = "cursors"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    stream: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]


class AccountHealth(Base):
    __tablename__ = "account_health"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    last_attempt_at: Mapped[datetime | None]
    # the first good poll: the digest covers no week before it
    first_success_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_kind: Mapped[str | None] = mapped_column(String(32))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    paused_until: Mapped[datetime | None]
    paused_reason: Mapped[str | None] = mapped_column(Text)
    next_poll_at: Mapped[datetime | None]
    session_state: Mapped[str | None] = mapped_column(Text)  # e.g. a reusable login session


class JobHealth(Base):
    """How each scheduled job fared: a job failing run after run makes the worker not ready."""

    __tablename__ = "job_health"

    job_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None]  # the first failure of the current run of failures
    last_failure_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    alerted_at: Mapped[datetime | None]  # IT was told of the current run of failures


# ------------------------------------------------------------- assessment and cases


class Assessment(Base):
    __tablename__ = "assessments"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), unique=True)
    model: Mapped[str | None] = mapped_column(String(64))  # None: rules only, rescore later
    scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    categories: Mapped[list[Any]] = mapped_column(default=list)
    severity: Mapped[str] = mapped_column(String(16))
    matches: Mapped[list[Any]] = mapped_column(default=list)
    assessed_at: Mapped[datetime]
    needs_rescore: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_state_due", "state", "due_at"),
        Index("ix_cases_school_state", "school_id", "state"),
        Index("ix_cases_queue", "severity", "state", "due_at", "opened_at"),  # moderators' queue
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    # makes opening idempotent: e.g. "item:42:abusive" or "two_admins:account:7"
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    item_id: Mapped[int | None] = mapped_column(
        ForeignKey("items.id", ondelete="SET NULL"), index=True
    )
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"))
    category: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    restricted: Mapped[bool] = mapped_column(Boolean, default=False)  # DSL and above only
    title: Mapped[str] = mapped_column(Text)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    opened_at: Mapped[datetime]
    due_at: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]
    breached_at: Mapped[datetime | None]
    responded_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    # R8: when its content was handled (hidden, removed, or reported and blocked); the response
    # clock stops and the case no longer counts as open in the digest
    handled_at: Mapped[datetime | None]
    cannot_hide: Mapped[bool] = mapped_column(Boolean, default=False)
    police_step: Mapped[str | None] = mapped_column(String(32))  # pending, reported, not_needed
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)

    # the text columns read as the vocabulary's enums (the column holds the enum's value)
    @property
    def case_state(self) -> CaseState:
        """``state`` as a ``CaseState``."""
        return CaseState(self.state)

    @property
    def case_category(self) -> Category:
        """``category`` as a ``Category``."""
        return Category(self.category)

    @property
    def case_severity(self) -> Severity:
        """``severity`` as a ``Severity``."""
        return Severity(self.severity)


class AuditEvent(Base):
    """Append-only audit log; each row's hash covers the previous row's hash."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    seq: Mapped[int] = mapped_column(BigIntPK, unique=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(
        String(200), index=True
    )  # e.g. "case:12", "account:oak-bsky"
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # HMAC-SHA256 of ``hash`` with the audit key (NULL only for events older than the anchor).
    mac: Mapped[str | None] = mapped_column(String(64))


class AuditHead(Base):
    """The end of the audit chain (one row), HMAC'd: a shortened or recomputed log shows."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    count: Mapped[int] = mapped_column(BigIntPK)
    last_seq: Mapped[int] = mapped_column(BigIntPK)
    last_hash: Mapped[str] = mapped_column(String(64))
    # Events up to this seq predate the anchor (hash chain only, no HMAC of their own).
    legacy_upto: Mapped[int] = mapped_column(BigIntPK, default=0)
    key_id: Mapped[str | None] = mapped_column(String(16))
    anchored_at: Mapped[datetime | None]
    mac: Mapped[str | None] = mapped_column(String(64))


class Evidence(Base):
    __tablename__ = "evidence"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    item_id: Mapped[int | None] = mapped_column(
        ForeignKey("items.id", ondelete="SET NULL"), index=True
    )
    captured_at: Mapped[datetime]
    captured_by: Mapped[str] = mapped_column(String(200))
    snapshot: Mapped[dict[str, Any]] = mapped_column()
    sha256: Mapped[str] = mapped_column(String(64))


class ActionRequest(Base):
    __tablename__ = "action_requests"
    __table_args__ = (Index("ix_action_requests_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    item_id: Mapped[int | None] = mapped_column(
        ForeignKey("items.id", ondelete="SET NULL"), index=True
    )
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    requested_by: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_error: Mapped[str | None] = mapped_column(Text)


class RemovalCheck(Base):
    """A scheduled re-check that a hide/remove/report took effect (R8)."""

    __tablename__ = "removal_checks"
    __table_args__ = (Index("ix_removal_checks_due", "checked_at", "due_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    action_id: Mapped[int | None] = mapped_column(ForeignKey("action_requests.id"))
    due_at: Mapped[datetime]
    is_final: Mapped[bool] = mapped_column(Boolean, default=False)
    checked_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(16))


class Alert(Base):
    """Durable outbox: every alert is a row before it is sent."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[str] = mapped_column(String(16))  # slack | email
    target: Mapped[str] = mapped_column(String(320))  # channel id, user id or email address
    kind: Mapped[str] = mapped_column(String(32))  # case_opened, case_updated, reminder, ...
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    external_ref: Mapped[str | None] = mapped_column(String(200))  # e.g. Slack channel:ts
    # when, undelivered too long, it was also sent by the other channel and IT was told
    escalated_at: Mapped[datetime | None]


class DigestRun(Base):
    __tablename__ = "digest_runs"
    __table_args__ = (UniqueConstraint("week", "scope"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    week: Mapped[str] = mapped_column(String(10))  # ISO week, e.g. 2026-W47
    scope: Mapped[str] = mapped_column(String(80))  # "trust" or "school:<key>"
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    recipients: Mapped[list[Any]] = mapped_column(default=list)
    figures: Mapped[dict[str, Any]] = mapped_column(default=dict)


# ------------------------------------------------------------- web sign-in


class LocalLogin(Base):
    """A local web account (schools without single sign-on): an argon2 hash, optional TOTP."""

    __tablename__ = "local_logins"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_key: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    totp_secret: Mapped[str | None] = mapped_column(String(64))  # base32; None: no TOTP
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


# ------------------------------------------------------------- scheduled posts (R16)


class PostDraft(Base):
    """A post the school means to publish: ``content`` is exactly what goes out (hashed)."""

    __tablename__ = "post_drafts"
    __table_args__ = (Index("ix_post_drafts_state_publish_at", "state", "publish_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"), index=True)
    drafted_by: Mapped[str] = mapped_column(String(64))  # staff id
    # draft, awaiting_approval, approved, rejected, cancelled, published, withdrawn
    state: Mapped[str] = mapped_column(String(24))
    content: Mapped[dict[str, Any]] = mapped_column()
    content_hash: Mapped[str] = mapped_column(String(64))
    publish_at: Mapped[datetime | None]  # None: as soon as approved
    findings: Mapped[list[Any]] = mapped_column(default=list)  # the last checks' results
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    submitted_at: Mapped[datetime | None]  # approval requested
    reminded_at: Mapped[datetime | None]


class PostApproval(Base):
    """One decision on a draft, bound to the SHA-256 of the content it was given for."""

    __tablename__ = "post_approvals"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    draft_id: Mapped[int] = mapped_column(ForeignKey("post_drafts.id"), index=True)
    decided_by: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(24))  # approved | changes_requested
    content_hash: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    overrides: Mapped[dict[str, Any]] = mapped_column(default=dict)  # finding key -> reason
    decided_at: Mapped[datetime]


class Publication(Base):
    """One draft on one account: the state machine that publishes it exactly once.

    pending -> publishing -> published; pending -> cancelled; publishing -> blocked | failed;
    published -> withdrawn. ``publishing`` survives a crash: the next run resumes with the
    same idempotency key (and ``platform_ids`` of the parts already out).
    """

    __tablename__ = "publications"
    __table_args__ = (
        UniqueConstraint("draft_id", "account_id"),
        Index("ix_publications_state_due", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    draft_id: Mapped[int] = mapped_column(ForeignKey("post_drafts.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None]  # the first attempt
    next_attempt_at: Mapped[datetime | None]
    platform_ids: Mapped[list[Any]] = mapped_column(default=list)  # one per part, in order
    url: Mapped[str | None] = mapped_column(Text)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id", ondelete="SET NULL"))
    published_at: Mapped[datetime | None]
    watch_until: Mapped[datetime | None]  # replies polled faster until then
    withdrawn_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
