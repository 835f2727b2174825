"""What both exports share: who asks, why they may not, and what was written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from monitor.constants import Role
from monitor.directory import Directory, Person


class UnknownCases(LookupError):
    """Some of the requested case ids do not exist."""

    def __init__(self, missing: Sequence[int]) -> None:
        self.missing = list(missing)
        super().__init__("no case with id " + ", ".join(str(i) for i in self.missing))


class ExportRefused(Exception):
    """The member of staff may not make this export; the message names the role it needs."""


class UnknownRequester(ExportRefused):
    """The staff id given for an export is not an active member of staff."""


@dataclass(frozen=True)
class Requester:
    """Who asks for an export: a member of staff, and the OS user who ran the command."""

    person: Person
    roles: frozenset[Role]
    via: str

    @property
    def label(self) -> str:
        """How the export names who made it: ``Ada Okafor (aokafor; cli:ada)``."""
        return f"{self.person.name} ({self.person.key}; {self.via})"


def requester_for(directory: Directory, staff: str, via: str) -> Requester | None:
    """The member of staff ``staff`` in post, or None."""
    person = directory.person(staff)
    # someone past their leaving date is no longer in post, even if still marked active
    if person is None or not directory.in_post(person):
        return None
    return Requester(person, directory.effective_roles(person), via)


def unknown_staff(staff: str) -> str:
    """The refusal for a staff id that is nobody in post."""
    return f"no active member of staff {staff!r}"


@dataclass(frozen=True)
class ExportResult:
    """Where an export was written and how many records of each kind it holds."""

    path: Path
    files: tuple[str, ...]
    counts: Mapping[str, int] = field(default_factory=dict)
    # safeguarding records left out of a subject-access export, per section (R6)
    withheld: Mapping[str, int] = field(default_factory=dict)
