"""Who reads which weekly digest, and what a digest may claim (R2, R3, R8), as data.

- A one-school organisation gets one digest (the trust's): a school digest would be the same.
- Otherwise, with ``digest.per_school``, each school has its own digest and the trust has one.
- A reader who serves particular schools (a head, a school's SLT) gets their own schools'
  digests; trust-wide leaders (no schools) get the trust's. Without school digests everyone
  gets the trust's.
- Statistics are shown only over enough samples (a 95th percentile of three numbers is noise).
- No digest for a week that ended before monitoring began (the first successful poll), and
  "every account was checked" only when each account was checked for the whole week.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.rules.routing import DIGEST_ROLES as DIGEST_ROLES

TRUST_SCOPE = "trust"
SCHOOL_PREFIX = "school:"

# the fewest response times a median, and a 95th percentile, are computed over
MIN_SAMPLES_MEDIAN = 5
MIN_SAMPLES_P95 = 20


def school_scope(school_key: str) -> str:
    """The digest scope of one school ("oak" -> "school:oak")."""
    return f"{SCHOOL_PREFIX}{school_key}"


def digest_scopes(school_keys: Sequence[str], *, per_school: bool) -> list[str]:
    """The digests the organisation sends each week: the trust's, then one per school.

    One school: the trust's digest only (a school digest would be an identical second email).
    """
    scopes = [TRUST_SCOPE]
    if per_school and len(school_keys) > 1:
        scopes += [school_scope(key) for key in school_keys]
    return scopes


def reader_scopes(reader_schools: Collection[str], scopes: Collection[str]) -> list[str]:
    """Which of ``scopes`` a digest reader serving ``reader_schools`` (empty: trust-wide) gets.

    Their own schools' digests when there are any; otherwise the trust's.
    """
    own = [school_scope(key) for key in sorted(reader_schools) if school_scope(key) in scopes]
    if own:
        return own
    return [TRUST_SCOPE] if TRUST_SCOPE in scopes else []


def readers_required(scope: str, scopes: Collection[str]) -> bool:
    """Whether ``scope``'s digest must have a reader (nobody to send it to is then a problem).

    A school's digest must; the trust's only when it is the only one: where every leader
    serves a school and reads that school's digest, nobody needs the trust's.
    """
    return scope != TRUST_SCOPE or not any(s != TRUST_SCOPE for s in scopes)


def enough_samples(count: int, minimum: int) -> bool:
    """Whether ``count`` samples are enough for a statistic that needs ``minimum``."""
    return count >= minimum


# ------------------------------------------------------------- what the digest may claim


@dataclass(frozen=True)
class AccountWatch:
    """How one account in a digest's scope was watched during the week."""

    account: str
    enabled: bool
    first_success: datetime | None  # its first good poll ever
    gap_seconds: float  # time without a good check in the week (monitoring-gap cases)
    gap_open: bool  # still unchecked at the week's end


def digest_due(monitoring_since: datetime | None, week_end: datetime) -> bool:
    """Whether a week gets a digest: only once monitoring began (a good poll) before its end."""
    return monitoring_since is not None and monitoring_since < week_end


def unwatched(watch: AccountWatch, week_start: datetime) -> str | None:
    """Why ``watch``'s account was not checked throughout the week, or None when it was."""
    if not watch.enabled:
        return "switched off: not monitored"
    if watch.first_success is None:
        return "never checked successfully"
    if watch.first_success > week_start:
        return "first checked during the week"
    if watch.gap_seconds > 0 or watch.gap_open:
        return "went unchecked for a while"
    return None


def checked_all_week(watches: Sequence[AccountWatch], week_start: datetime) -> bool:
    """ "Every account was checked throughout the week": true only when it holds for each."""
    return bool(watches) and all(unwatched(w, week_start) is None for w in watches)
