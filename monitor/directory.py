"""Who is who: staff with their roles and schools, and where each school's alerts go."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.clock import require_aware
from monitor.config_models import Routing
from monitor.constants import DEFAULT_TIMEZONE, Category, Role
from monitor.rules.engine import in_post
from monitor.rules.staff import ROLE_OVERRIDES
from monitor.rules.staff import Person as Person
from monitor.storage import tables as t


def local_today(now: datetime, timezone: str | None) -> date:
    """The date at ``now`` in ``timezone`` (a school's; Europe/London when unset)."""
    return require_aware(now).astimezone(ZoneInfo(timezone or DEFAULT_TIMEZONE)).date()


@dataclass(frozen=True)
class Directory:
    """Staff plus the routing configuration as of ``now``; pure lookups."""

    people: tuple[Person, ...]
    routing: Routing
    now: datetime  # when it was read: leaving dates are judged against this moment
    timezone: str = DEFAULT_TIMEZONE  # the organisation's, for trust-wide matters
    school_timezones: Mapping[str, str] = field(default_factory=dict)  # school key -> zone

    def today(self, school_key: str | None = None) -> date:
        """The local date at the school (the organisation's date for trust-wide matters)."""
        zone = self.school_timezones.get(school_key or "") or self.timezone
        return local_today(self.now, zone)

    def in_post(self, person: Person, school_key: str | None = None) -> bool:
        """Active and not past their leaving date at ``school_key`` (R4)."""
        return in_post(
            active=person.active, leaving_on=person.leaving_on, today=self.today(school_key)
        )

    def person(self, key: str) -> Person | None:
        """The member of staff with ``key``."""
        return next((p for p in self.people if p.key == key), None)

    def by_slack_id(self, slack_user_id: str) -> Person | None:
        """The member of staff with this Slack user id."""
        return next((p for p in self.people if p.slack_user_id == slack_user_id), None)

    def with_roles(self, roles: Iterable[Role], school_key: str | None) -> list[Person]:
        """Staff in post holding any of ``roles`` for the school (honouring routing overrides)."""
        wanted = frozenset(roles)
        chosen: dict[str, Person] = {}

        def here(person: Person) -> bool:
            return self.in_post(person, school_key) and person.serves(school_key)

        for field_name, covered in ROLE_OVERRIDES.items():
            named = getattr(self.routing, field_name)
            if not named or not wanted & covered:
                continue
            present = [p for key in named if (p := self.person(key)) is not None and here(p)]
            for person in present:
                chosen[person.key] = person
            if present:
                # when none of those named is in post here, the others holding the role are told
                wanted -= covered
        for person in self.people:
            if here(person) and person.roles & wanted:
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


# How jobs get the directory: from their session, as of their ``now``.
DirectoryFor = Callable[[Session, datetime], Directory]


def load_directory(
    session: Session, routing: Routing, *, now: datetime, timezone: str = DEFAULT_TIMEZONE
) -> Directory:
    """The directory from the staff table (archived staff excluded) as of ``now``.

    ``timezone`` is the organisation's; each school's own comes from the schools table.
    """
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
            leaving_on=row.leaving_on,
        )
        for row in rows
    )
    zones: dict[str, str] = dict(session.execute(select(t.School.key, t.School.timezone)).all())
    return Directory(
        people, routing, now=require_aware(now), timezone=timezone, school_timezones=zones
    )
