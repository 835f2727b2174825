"""Who is who: staff with their roles and schools, and where each school's alerts go."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.config_models import Routing
from monitor.constants import Category, Role
from monitor.storage import tables as t


@dataclass(frozen=True)
class Person:
    """A member of staff as routing sees them."""

    key: str
    name: str
    email: str | None
    slack_user_id: str | None
    roles: frozenset[Role]
    schools: frozenset[str]  # empty: trust-wide
    active: bool = True

    def serves(self, school_key: str | None) -> bool:
        """True when they cover ``school_key`` (trust-wide staff cover every school)."""
        return not self.schools or school_key is None or school_key in self.schools


# routing.dsl / routing.slt / routing.it name people for these roles explicitly
ROLE_OVERRIDES: dict[str, frozenset[Role]] = {
    "dsl": frozenset({Role.DSL, Role.DEPUTY_DSL}),
    "slt": frozenset({Role.SLT, Role.PRINCIPAL}),
    "it": frozenset({Role.IT_ADMIN}),
}


@dataclass(frozen=True)
class Directory:
    """Staff plus the routing configuration; pure lookups."""

    people: tuple[Person, ...]
    routing: Routing

    def person(self, key: str) -> Person | None:
        """The member of staff with ``key``."""
        return next((p for p in self.people if p.key == key), None)

    def by_slack_id(self, slack_user_id: str) -> Person | None:
        """The member of staff with this Slack user id."""
        return next((p for p in self.people if p.slack_user_id == slack_user_id), None)

    def with_roles(self, roles: Iterable[Role], school_key: str | None) -> list[Person]:
        """Active staff holding any of ``roles`` for the school (honouring routing overrides)."""
        wanted = frozenset(roles)
        chosen: dict[str, Person] = {}
        for field_name, covered in ROLE_OVERRIDES.items():
            named = getattr(self.routing, field_name)
            if named and wanted & covered:
                for key in named:
                    person = self.person(key)
                    if person and person.active and person.serves(school_key):
                        chosen[person.key] = person
                wanted -= covered
        for person in self.people:
            if person.active and person.serves(school_key) and person.roles & wanted:
                chosen.setdefault(person.key, person)
        return sorted(chosen.values(), key=lambda p: p.key)

    def effective_roles(self, person: Person) -> frozenset[Role]:
        """Their roles plus any that routing names them for (e.g. ``routing.dsl``)."""
        roles = set(person.roles)
        for field_name, covered in ROLE_OVERRIDES.items():
            if person.key in getattr(self.routing, field_name):
                roles |= covered
        return frozenset(roles)

    def channel_for(self, school_key: str | None, category: Category) -> str | None:
        """The Slack channel for a school's alerts of ``category``."""
        school = self.routing.schools.get(school_key or "")
        if school is not None:
            return (
                school.by_category.get(category)
                or school.default
                or self.routing.slack_default_channel
            )
        return self.routing.slack_default_channel


def load_directory(session: Session, routing: Routing) -> Directory:
    """The directory from the staff table (archived staff excluded)."""
    rows = session.scalars(
        select(t.Staff).where(t.Staff.archived_at.is_(None)).order_by(t.Staff.key)
    ).all()
    people = tuple(
        Person(
            key=row.key,
            name=row.name,
            email=row.email,
            slack_user_id=row.slack_user_id,
            roles=frozenset(Role(r) for r in row.roles),
            schools=frozenset(row.schools),
            active=row.active and row.left_at is None,
        )
        for row in rows
    )
    return Directory(people, routing)
