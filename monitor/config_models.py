"""Typed models of the YAML configuration (validated by pydantic)."""

from __future__ import annotations

import datetime as dt
import re
from datetime import date
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from monitor.constants import (
    DEFAULT_GAP_LIMIT_SECONDS,
    DEFAULT_POLL_INTERVAL_SECONDS,
    DEFAULT_TIMEZONE,
    Category,
    Platform,
    Role,
)

KEY_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
Key = Annotated[str, Field(pattern=KEY_PATTERN)]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


class UnknownSchool(LookupError):
    """No school with this key is configured (never configured, or taken out: archived)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"unknown school {key!r}")
        self.key = key


def parse_duration(value: Any) -> float:
    """Seconds from ``300``, ``"5m"``, ``"1.5h"`` or ``"2d"``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like '5m', '4h', '2d'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "s").lower()]
    else:
        raise ValueError("a duration is a number of seconds or text like '5m', '4h', '2d'")
    if seconds <= 0:
        raise ValueError("a duration must be more than zero")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


_TIME_OF_DAY = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?\s*$")
QUOTE_THE_TIME = 'write the time in quotes, such as "17:00" or "07:30"'


def parse_time_of_day(value: Any) -> dt.time:
    """A local time of day from quoted text such as ``"17:00"``; numbers are refused.

    Unquoted, YAML 1.1 reads ``17:00`` as the number 1020 (base 60) and ``7.30`` as 7.3,
    which would otherwise become 00:17 UTC or 00:00:07.3 without a word.
    """
    if isinstance(value, dt.time) and value.tzinfo is None:
        return value
    if isinstance(value, (bool, int, float)):
        raise ValueError(
            f"a time of day cannot be a number (YAML read this one as {value!r}): " + QUOTE_THE_TIME
        )
    if isinstance(value, str) and (match := _TIME_OF_DAY.match(value)):
        hour, minute, second = match.groups()
        return dt.time(int(hour), int(minute), int(second or 0))
    raise ValueError(f"not a time of day: {value!r}; {QUOTE_THE_TIME}")


TimeOfDay = Annotated[dt.time, BeforeValidator(parse_time_of_day)]


def check_timezone(value: str) -> str:
    """Accept only IANA zone names that this machine knows."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown timezone {value!r} (use an IANA name such as 'Europe/London')"
        ) from exc
    return value


TimeZoneName = Annotated[str, BeforeValidator(check_timezone)]


class Strict(BaseModel):
    """Base: unknown fields are errors, so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Organisation(Strict):
    name: str = Field(min_length=1)
    timezone: TimeZoneName = DEFAULT_TIMEZONE
    dashboard_url: str | None = None


class School(Strict):
    key: Key
    name: str = Field(min_length=1, max_length=200)
    timezone: TimeZoneName | None = None
    aliases: list[str] = Field(default_factory=list)
    search_terms: list[str] = Field(default_factory=list)
    # words that must never count against this school (e.g. a place name that looks rude)
    allow_terms: list[str] = Field(default_factory=list)
    # extra rule terms per category, added to the built-in lexicons
    extra_terms: dict[Category, list[str]] = Field(default_factory=dict)
    # R13: the school's email domains; an account's linked_email must be in one of them
    email_domains: list[str] = Field(default_factory=list)

    def mention_terms(self) -> list[str]:
        """Every name the public-mention search looks for, without duplicates."""
        seen: dict[str, None] = {}
        for term in [self.name, *self.aliases, *self.search_terms]:
            if term.strip():
                seen.setdefault(term.strip(), None)
        return list(seen)


class StaffMember(Strict):
    id: Key
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    slack_user_id: str | None = Field(default=None, pattern=r"^[UW][A-Z0-9]{2,}$")
    roles: list[Role] = Field(default_factory=list)
    schools: list[str] = Field(default_factory=list)  # empty: trust-wide
    active: bool = True
    leaving_date: date | None = None
    successor: str | None = None
    # the server's OS user who may act as this member of staff with `--as` (R6)
    os_user: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_.-]{0,31}$")


class SecretRef(Strict):
    """Where a secret lives: an environment variable, or a file (e.g. a Docker secret)."""

    env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    file: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' (a variable name) or 'file' (a path)")
        return self

    def describe(self) -> str:
        """Where to put the secret, in words; never the value."""
        if self.env:
            return f"environment variable {self.env} (or a file named by {self.env}_FILE)"
        return f"file {self.file}"


class Account(Strict):
    key: Key
    platform: Platform
    handle: str = Field(min_length=1, max_length=200)
    school: str
    enabled: bool = True
    admins: list[str] = Field(default_factory=list)
    approved_by: str | None = None
    linked_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    poll_interval: Duration = DEFAULT_POLL_INTERVAL_SECONDS
    gap_limit: Duration = DEFAULT_GAP_LIMIT_SECONDS
    watch_mentions: bool = True
    options: dict[str, Any] = Field(default_factory=dict)
    credentials: dict[str, SecretRef] = Field(default_factory=dict)


class Calendar(Strict):
    region: Literal["england_wales", "scotland", "northern_ireland"] = "england_wales"
    closures: list[date] = Field(default_factory=list)
    closure_ranges: list[tuple[date, date]] = Field(default_factory=list)

    @field_validator("closure_ranges")
    @classmethod
    def _ranges_in_order(cls, value: list[tuple[date, date]]) -> list[tuple[date, date]]:
        for first, last in value:
            if last < first:
                raise ValueError(f"closure range {first}..{last} ends before it starts")
        return value


class ResponseTargets(Strict):
    within: Duration = 24 * 3600
    end_of_day: TimeOfDay = dt.time(17, 0)
    reminder_before: Duration = 4 * 3600
    calendar: Calendar = Field(default_factory=Calendar)


class HandlingTargets(Strict):
    first_action_within: Duration = 2 * 3600  # working hours: day_starts to end_of_day
    day_starts: TimeOfDay = dt.time(8, 0)
    removal_within: Duration = 24 * 3600
    reminder_before: Duration = 30 * 60


class AutoHide(Strict):
    enabled: bool = False
    dry_run: bool = True
    thresholds: dict[Category, float] = Field(default_factory=lambda: {Category.ABUSIVE: 0.95})


# Scores at or above these raise a category (severity.SCORE_RULES says which); a label set
# to null raises nothing. The concern_* labels' thresholds are the cross-validated
# thresholds recorded in monitor/classify/concern_heads.json (a test keeps them equal).
DEFAULT_THRESHOLDS: dict[str, float | None] = {
    "toxicity": 0.8,
    "severe_toxicity": 0.5,
    "obscene": 0.8,
    "threat": 0.6,
    "insult": 0.8,
    "identity_attack": 0.7,
    "sexual_explicit": 0.8,
    "concern_safeguarding": 0.55,
    "concern_threat": 0.7,
    "concern_negative": 0.8,
}


class Concern(Strict):
    """The sentence-meaning model for safeguarding concerns (R6)."""

    enabled: bool = True
    model_path: str | None = None  # a local copy of the encoder folder (offline servers)
    device: str = "cpu"


class Classifier(Strict):
    model: Literal["original", "unbiased", "multilingual", "original-small", "unbiased-small"] = (
        "original"
    )
    device: str = "cpu"
    checkpoint: str | None = None
    huggingface_config_path: str | None = None
    batch_size: int = Field(default=32, ge=1, le=512)
    # int8 matrix products when the accuracy guard allows (auto), never (fp32) or always (int8)
    precision: Literal["auto", "fp32", "int8"] = "auto"
    precision_tolerance: float = Field(default=0.02, ge=0.0, le=1.0)
    protected_names_file: str | None = None
    # labels given here replace the defaults one by one; the others keep their default
    thresholds: dict[str, float | None] = Field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    concern: Concern = Field(default_factory=Concern)
    auto_hide: AutoHide = Field(default_factory=AutoHide)

    @field_validator("thresholds")
    @classmethod
    def _in_unit_range(cls, value: dict[str, float | None]) -> dict[str, float | None]:
        for label, threshold in value.items():
            if threshold is not None and not 0.0 <= threshold <= 1.0:
                raise ValueError(f"threshold for {label!r} must be between 0 and 1 (or null)")
        return {**DEFAULT_THRESHOLDS, **value}


class SchoolChannels(Strict):
    default: str | None = None
    by_category: dict[Category, str] = Field(default_factory=dict)


class Routing(Strict):
    slack_default_channel: str | None = None
    slack_it_channel: str | None = None
    schools: dict[str, SchoolChannels] = Field(default_factory=dict)
    # named people; when empty, staff with the matching role are used
    dsl: list[str] = Field(default_factory=list)
    slt: list[str] = Field(default_factory=list)
    it: list[str] = Field(default_factory=list)
    quiet_hours: tuple[TimeOfDay, TimeOfDay] | None = None
    # R6: safeguarding emails carry no content unless this is set; they link to the case
    dsl_email_text: bool = False


class Digest(Strict):
    weekday: Literal[
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"
    ] = "monday"
    time: TimeOfDay = Field(default=dt.time(7, 30))
    recipients: list[str] = Field(default_factory=list)  # staff ids; empty: every SLT member
    per_school: bool = True


class Retention(Strict):
    unflagged_items_days: int = Field(default=90, ge=1)
    flagged_items_days: int = Field(default=365 * 2, ge=1)
    evidence_days: int = Field(default=365 * 7, ge=1)
    closed_cases_days: int = Field(default=365 * 7, ge=1)
    alerts_days: int = Field(default=365, ge=1)


class WorkerTiming(Strict):
    assess_every: Duration = 10
    actions_every: Duration = 10
    deliver_every: Duration = 5
    verify_every: Duration = 60
    compliance_every: Duration = 300
    rescore_every: Duration = 600
    publish_every: Duration = 10


class Posting(Strict):
    """The scheduler (R16): who approves posts, the no-publication list and platform limits."""

    approvers: list[Role] = Field(default_factory=lambda: [Role.PRINCIPAL, Role.SLT])
    approvers_by_school: dict[str, list[Role]] = Field(default_factory=dict)
    self_approval: bool = False
    overriders: list[Role] = Field(default_factory=lambda: [Role.PRINCIPAL])
    no_publication_file: str | None = None
    mastodon_max_chars: int = Field(default=500, ge=1, le=100_000)
    max_image_bytes: int = Field(default=1_000_000, ge=1)
    approval_reminder_after: Duration = 4 * 3600
    reply_watch: Duration = 3600
    reply_poll_interval: Duration = 60


def _web_origin(value: str) -> str:
    """An http(s) URL without a trailing slash (issuers must match exactly, character for character)."""
    if not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", value):
        raise ValueError(f"not an http(s) URL: {value!r}")
    if value.endswith("/"):
        raise ValueError(f"leave out the trailing slash: {value.rstrip('/')!r}")
    return value


WebURL = Annotated[str, BeforeValidator(lambda v: _web_origin(str(v)))]


class OpenIDConnect(Strict):
    """Single sign-on with the school's identity provider (Entra ID, Google Workspace)."""

    issuer: WebURL
    client_id: str = Field(min_length=1)
    client_secret: SecretRef | None = None  # None: a public client (PKCE only)


class Web(Strict):
    """The web workplace: sign-in, sessions and where it is reached."""

    public_url: WebURL | None = None  # e.g. https://monitor.oak.sch.uk; the callback hangs off it
    oidc: OpenIDConnect | None = None
    local_accounts: bool = True  # argon2 accounts made with `monitor user add`
    session_idle: Duration = 30 * 60
    session_lifetime: Duration = 12 * 3600
    secure_cookies: bool | None = None  # None: when public_url is https
    login_attempts: int = Field(default=5, ge=1, le=100)  # per 15 minutes per address and name

    @model_validator(mode="after")
    def _some_way_in(self) -> Web:
        if self.oidc is None and not self.local_accounts:
            raise ValueError("give web.oidc or keep web.local_accounts: nobody could sign in")
        if self.oidc is not None and self.public_url is None:
            raise ValueError("web.oidc needs web.public_url (the provider redirects back to it)")
        if self.session_idle > self.session_lifetime:
            raise ValueError("session_idle cannot be longer than session_lifetime")
        return self

    @property
    def cookies_secure(self) -> bool:
        """Whether the session cookie is sent over TLS only."""
        if self.secure_cookies is not None:
            return self.secure_cookies
        return bool(self.public_url and self.public_url.startswith("https://"))


class Config(Strict):
    organisation: Organisation
    schools: list[School] = Field(min_length=1)
    staff: list[StaffMember] = Field(default_factory=list)
    accounts: list[Account] = Field(default_factory=list)
    response_targets: ResponseTargets = Field(default_factory=ResponseTargets)
    handling_targets: HandlingTargets = Field(default_factory=HandlingTargets)
    classifier: Classifier = Field(default_factory=Classifier)
    routing: Routing = Field(default_factory=Routing)
    digest: Digest = Field(default_factory=Digest)
    retention: Retention = Field(default_factory=Retention)
    worker: WorkerTiming = Field(default_factory=WorkerTiming)
    web: Web = Field(default_factory=Web)
    posting: Posting = Field(default_factory=Posting)

    def school(self, key: str) -> School:
        """The school with ``key``; ``UnknownSchool`` if none is configured."""
        for school in self.schools:
            if school.key == key:
                return school
        raise UnknownSchool(key)

    def has_school(self, key: str) -> bool:
        """Whether a school with ``key`` is configured."""
        return any(s.key == key for s in self.schools)

    def staff_member(self, staff_id: str) -> StaffMember:
        """The staff member with ``staff_id``."""
        return next(s for s in self.staff if s.id == staff_id)

    def timezone_of(self, school_key: str) -> str:
        """The school's timezone, else the organisation's."""
        return self.school(school_key).timezone or self.organisation.timezone
