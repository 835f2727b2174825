"""Staff as the rules see them: who someone is, and what the rules need of the directory.

The directory (``monitor.directory``) reads staff and routing from the database and
satisfies ``StaffDirectory``; the rules take it as data and never import it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from monitor.constants import Category, Role


@dataclass(frozen=True)
class Person:
    """A member of staff as routing sees them."""

    key: str
    name: str
    email: str | None
    slack_user_id: str | None
    roles: frozenset[Role]
    schools: frozenset[str]  # empty: trust-wide
    active: bool = True  # false once away, handed over or archived
    leaving_on: date | None = None  # their last day (R4)

    def serves(self, school_key: str | None) -> bool:
        """True when they cover ``school_key`` (trust-wide staff cover every school)."""
        return not self.schools or school_key is None or school_key in self.schools


# routing.dsl / routing.slt / routing.it name people for these roles explicitly
ROLE_OVERRIDES: dict[str, frozenset[Role]] = {
    "dsl": frozenset({Role.DSL, Role.DEPUTY_DSL}),
    "slt": frozenset({Role.SLT, Role.PRINCIPAL}),
    "it": frozenset({Role.IT_ADMIN}),
}


class AlertChannels(Protocol):
    """The trust-wide Slack channels routing names."""

    @property
    def slack_default_channel(self) -> str | None: ...

    @property
    def slack_it_channel(self) -> str | None: ...


class StaffDirectory(Protocol):
    """What the rules need of the directory: pure lookups as of the moment it was read."""

    @property
    def people(self) -> tuple[Person, ...]: ...

    @property
    def routing(self) -> AlertChannels: ...

    def by_slack_id(self, slack_user_id: str) -> Person | None: ...

    def in_post(self, person: Person, school_key: str | None = None) -> bool: ...

    def effective_roles(self, person: Person) -> frozenset[Role]: ...

    def with_roles(self, roles: Iterable[Role], school_key: str | None) -> list[Person]: ...

    def channel_for(self, school_key: str | None, category: Category) -> str | None: ...
