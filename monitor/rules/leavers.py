"""R4: what a leaving date and a successor must satisfy before a handover is scheduled (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date


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
