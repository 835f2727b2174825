"""R3, R4: what leaving dates and successors must satisfy, and who hears of a leaver (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

from monitor.constants import Role
from monitor.rules.engine import MIN_ADMINS
from monitor.rules.staff import Person, StaffDirectory


def leaving_date_refusal(on: date, *, today: date) -> str | None:
    """Why a leaving date cannot be scheduled (it is in the past), or None."""
    if on < today:
        return f"the leaving date {on.isoformat()} is in the past (today is {today.isoformat()})"
    return None


def successor_refusal(
    successor: str, *, successor_schools: Iterable[str], account_key: str, account_school: str
) -> str | None:
    """Why ``successor`` cannot take over an account of ``account_school``, or None.

    Staff linked to no school serve the whole trust; anyone else must serve the account's school.
    """
    schools = frozenset(successor_schools)
    if not schools or account_school in schools:
        return None
    return (
        f"successor {successor!r} does not serve {account_school}, the school of {account_key}; "
        "name someone who does"
    )


def leavers_together_refusal(
    *,
    account_key: str,
    admins: Iterable[str],
    in_post: Iterable[str],
    leavers: Mapping[str, str | None],
) -> str | None:
    """R3, R4: why the scheduled leavers together would leave an account short, or None.

    ``leavers``: everyone with a leaving date (staff id: their successor or None). Each may
    be fine alone and still, with the others, leave the account below two administrators.
    As for one leaver (``engine.plan_handover``), a leaver whose named successor takes the
    role over is never the reason for a refusal: blocking them would leave the leaver in charge.
    """
    admins = frozenset(admins)
    going = sorted(key for key in leavers if key in admins)
    if not going:
        return None
    staying = {a for a in admins if a in frozenset(in_post) and a not in leavers}
    successors = {
        s for key in going if (s := leavers[key]) is not None and s not in leavers and s != key
    }
    after = staying | successors
    if len(after) >= MIN_ADMINS or all(leavers[key] for key in going):
        return None
    return (
        f"{account_key} would be left with {len(after)} active administrator(s) once "
        f"{', '.join(going)} have all left; name a successor for each or add an administrator first"
    )


# R4: who hears of a leaver (the warnings before the day, a blocked handover): their school's
# leaders; a leaver who serves the whole trust, the trust's leaders (staff linked to no school).
LEAVER_AUDIENCE: frozenset[Role] = frozenset({Role.SLT, Role.PRINCIPAL})


def leaver_audience(directory: StaffDirectory, leaver_schools: Iterable[str]) -> list[Person]:
    """The leaders told about a leaver of ``leaver_schools`` (empty: trust-wide)."""
    schools = sorted(frozenset(leaver_schools))
    if not schools:
        return [p for p in directory.with_roles(LEAVER_AUDIENCE, None) if not p.schools]
    chosen: dict[str, Person] = {}
    for school in schools:
        for person in directory.with_roles(LEAVER_AUDIENCE, school):
            chosen.setdefault(person.key, person)
    return sorted(chosen.values(), key=lambda p: p.key)
