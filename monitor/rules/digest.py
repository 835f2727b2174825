"""Who reads which weekly digest, and what a digest may claim (R2, R3, R8), as data.

- A one-school organisation gets one digest (the trust's): a school digest would be the same.
- Otherwise, with ``digest.per_school``, each school has its own digest and the trust has one.
- A reader who serves particular schools (a head, a school's SLT) gets their own schools'
  digests; trust-wide leaders (no schools) get the trust's. Without school digests everyone
  gets the trust's.
- Statistics are shown only over enough samples (a 95th percentile of three numbers is noise).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

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


def enough_samples(count: int, minimum: int) -> bool:
    """Whether ``count`` samples are enough for a statistic that needs ``minimum``."""
    return count >= minimum
