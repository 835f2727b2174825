"""Every enumeration and fixed value the core shares, in one place."""

from __future__ import annotations

from enum import StrEnum


class Platform(StrEnum):
    """Social platforms with a built-in connector."""

    BLUESKY = "bluesky"
    MASTODON = "mastodon"
    REDDIT = "reddit"


class Role(StrEnum):
    """Staff roles; they decide who hears about what and who may act."""

    COMMS = "comms"
    MODERATOR = "moderator"
    DSL = "dsl"
    DEPUTY_DSL = "deputy_dsl"
    PRINCIPAL = "principal"
    SLT = "slt"
    IT_ADMIN = "it_admin"


class ItemKind(StrEnum):
    """What a stored item is, relative to the school's account."""

    POST = "post"  # a post by the school's own account
    REPLY = "reply"  # a reply or comment in a thread of the school's account
    MENTION = "mention"  # a post that mentions the school (notification or search)


class Category(StrEnum):
    """What an assessment or a case is about."""

    # content categories, from the classifier
    ABUSIVE = "abusive"
    SAFEGUARDING = "safeguarding"
    THREAT = "threat"
    PERSONAL_DATA = "personal_data"
    MEDIA_ENQUIRY = "media_enquiry"
    NEEDS_RESPONSE = "needs_response"
    NEGATIVE_MENTION = "negative_mention"
    # operational categories, from the compliance checks
    MONITORING_GAP = "monitoring_gap"
    TWO_ADMINS = "two_admins"
    ACCOUNT_REGISTER = "account_register"
    CREDENTIAL_ROTATION = "credential_rotation"
    SAFEGUARDING_NO_DSL = "safeguarding_no_dsl"  # a leaver's safeguarding case found no DSL
    SCHOOL_WITHOUT_DSL = "school_without_dsl"  # a school with accounts has no DSL in post
    REMOVAL_OVERDUE = "removal_overdue"
    CLASSIFIER_DOWN = "classifier_down"
    CONNECTOR_AUTH = "connector_auth"
    DELIVERY_FAILED = "delivery_failed"
    ITEM_QUARANTINED = "item_quarantined"  # the database refused an item even alone


CONTENT_CATEGORIES: frozenset[Category] = frozenset(
    {
        Category.ABUSIVE,
        Category.SAFEGUARDING,
        Category.THREAT,
        Category.PERSONAL_DATA,
        Category.MEDIA_ENQUIRY,
        Category.NEEDS_RESPONSE,
        Category.NEGATIVE_MENTION,
    }
)


class Severity(StrEnum):
    """How serious something is; ordered by ``SEVERITY_ORDER``."""

    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


SEVERITY_ORDER: dict[Severity, int] = {
    Severity.NONE: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}


class CaseState(StrEnum):
    """Life cycle of a case."""

    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    ACTIONED = "actioned"
    RESPONDED = "responded"
    ESCALATED = "escalated"
    DISMISSED = "dismissed"
    CLOSED = "closed"


OPEN_CASE_STATES: frozenset[CaseState] = frozenset(
    {CaseState.NEW, CaseState.ACKNOWLEDGED, CaseState.ACTIONED, CaseState.ESCALATED}
)


class ActionKind(StrEnum):
    """Things a person or the policy can ask the worker to do."""

    HIDE = "hide"
    UNHIDE = "unhide"
    REMOVE = "remove"
    BLOCK = "block"
    MUTE = "mute"
    REPORT = "report"
    REPLY = "reply"
    ACKNOWLEDGE = "acknowledge"
    DISMISS = "dismiss"
    ASSIGN = "assign"
    ESCALATE = "escalate"
    MARK_RESPONDED = "mark_responded"
    CLOSE = "close"
    POLICE_REPORTED = "police_reported"  # the R9 step: reported to the police
    POLICE_NOT_NEEDED = "police_not_needed"  # the R9 step: considered, no report


class ActionStatus(StrEnum):
    """Where an action request is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    DRY_RUN = "dry_run"


class AlertStatus(StrEnum):
    """Outbox states of an alert."""

    PENDING = "pending"
    SENDING = "sending"  # claimed by a delivery attempt; after a crash: look before resending
    SENT = "sent"
    FAILED = "failed"  # no longer set: undelivered alerts are retried until sent or cancelled
    CANCELLED = "cancelled"  # a person stopped it (``monitor alerts cancel``; audited)


class AlertKind(StrEnum):
    """What an alert in the outbox says; a case update's kind may name what it is about after
    a colon (``state:closed``, ``escalated:12``): ``AlertKind.of`` reads it back."""

    CASE_OPENED = "case_opened"  # a case's first alert: the message later ones update
    CASE_UPDATED = "case_updated"  # ``case_updated:{request id}``: a platform action was taken
    STATE = "state"  # ``state:{new state}``: the case changed state
    REASSESSED = "reassessed"  # the category or severity changed
    REMINDER = "reminder"  # R2: the response is due soon
    BREACH = "breach"  # R2: the response target was missed
    ESCALATED = "escalated"  # ``escalated:{request id}``: someone escalated it
    HANDLING_REMINDER = "handling_reminder"  # R5/R8: nobody has acted on abuse yet
    HANDLING_MISSED = "handling_missed"  # R5/R8: no first action by the handling target
    REMOVAL_MISSED = "removal_missed"  # R8: removal not sought within its target
    STILL_PUBLIC = "still_public"  # R8: reported and blocked where it cannot be hidden
    BREAK_GLASS = "break_glass"  # R6: safeguarding content shown on the server by break-glass
    LEAVER_WARNING = "leaver_warning"  # R4: a member of staff leaves soon
    POST_APPROVAL = "post_approval"  # R16: a draft post waits for an approver
    UNDELIVERED = "undelivered"  # to IT: an alert is stuck
    DSL_UNREACHED = "dsl_unreached"  # to the principal: no DSL or deputy has it yet
    DELIVERY_FAILED = "delivery_failed"
    JOB_FAILING = "job_failing"
    JOB_RECOVERED = "job_recovered"

    def about(self, subject: object) -> str:
        """The kind with what it is about: ``AlertKind.STATE.about("closed") == "state:closed"``."""
        return f"{self.value}:{subject}"

    @classmethod
    def of(cls, kind: str) -> AlertKind:
        """The kind of a stored alert, without what it is about (ValueError when unknown)."""
        return cls(kind.split(":")[0])


class PollErrorKind(StrEnum):
    """Why a poll failed, as recorded in ``account_health.last_error_kind``."""

    RATE_LIMITED = "rate_limited"
    AUTH = "auth"  # the login was refused: the account pauses until its credentials are fixed
    TRANSIENT = "transient"
    REFUSED = "refused"  # the platform answered with an error of ours that retrying may not fix
    CRASH = "crash"


class AlertChannel(StrEnum):
    """How an alert is delivered."""

    SLACK = "slack"
    EMAIL = "email"


class ExportKind(StrEnum):
    """Kinds of record export; each has its own roles (R6, R7, R14)."""

    SAFEGUARDING_EVIDENCE = "safeguarding_evidence"  # evidence of a safeguarding case
    EVIDENCE = "evidence"  # evidence of any other case
    SUBJECT_ACCESS = "subject_access"  # everything held about one author


DEFAULT_TIMEZONE = "Europe/London"
DEFAULT_POLL_INTERVAL_SECONDS = 300
DEFAULT_GAP_LIMIT_SECONDS = 30 * 60
# Row ids are 64-bit signed integers on SQLite and PostgreSQL: a larger id names nothing.
MAX_ROW_ID = 2**63 - 1
