"""The subject-access report as a readable, printable page: a cover letter, then the records.

What goes in is decided by ``monitor.exports.subject.subject_report`` (the export's rule);
this module only chooses the readable columns and writes the letter's facts from the
configuration (purposes, retention, automated assessment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitor.config_models import Config
from monitor.exports.subject import SECTION_TITLES, SubjectReport

# per section: (column, label) shown to the person; the JSON export keeps every column
READABLE: dict[str, tuple[tuple[str, str], ...]] = {
    "items": (
        ("posted_at_london", "Posted"),
        ("platform", "Platform"),
        ("account", "On the account"),
        ("author_handle", "Handle"),
        ("author_name", "Name"),
        ("text", "Text"),
        ("url", "Link"),
        ("visibility", "Now"),
    ),
    "assessments": (
        ("assessed_at_london", "Assessed"),
        ("item_id", "Post"),
        ("severity", "Severity"),
        ("categories", "Categories"),
        ("scores", "Scores"),
    ),
    "cases": (
        ("opened_at_london", "Opened"),
        ("case_id", "Case"),
        ("category", "Category"),
        ("state", "State"),
        ("title", "Title"),
        ("closed_at_london", "Closed"),
    ),
    "case_history": (
        ("at_london", "When"),
        ("case_id", "Case"),
        ("action", "What happened"),
        ("reason", "Reason"),
    ),
    "evidence": (
        ("captured_at_london", "Captured"),
        ("case_id", "Case"),
        ("text", "Text"),
        ("url", "Link"),
        ("sha256", "SHA-256"),
    ),
    "actions": (
        ("requested_at_london", "Requested"),
        ("kind", "Action"),
        ("status", "Status"),
        ("reason", "Reason"),
    ),
}


@dataclass(frozen=True)
class Section:
    title: str
    columns: tuple[tuple[str, str], ...]
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class Letter:
    """The cover letter's facts."""

    organisation: str
    purposes: list[str]
    retention: list[str]
    automated: list[str]


def _days(days: int) -> str:
    if days % 365 == 0:
        years = days // 365
        return f"{years} year{'s' if years != 1 else ''}"
    return f"{days} days"


def letter(config: Config) -> Letter:
    """The cover letter's purposes, retention and automated assessment, from the config."""
    keep = config.retention
    auto = config.classifier.auto_hide
    automated = [
        f"Each comment on the schools' official accounts is scored by an automated model "
        f"(Detoxify, {config.classifier.model}) and checked against word rules for abuse, "
        "threats and safeguarding concerns.",
        "A score above a threshold only alerts a member of staff, who reviews the comment "
        "before anything is done about you; no decision about you is made by the software alone.",
    ]
    if auto.enabled and not auto.dry_run:
        automated.append(
            "The software may hide a reply on the school's own account automatically when its "
            "score is very high; a member of staff reviews every reply it hides and can unhide it."
        )
    return Letter(
        organisation=config.organisation.name,
        purposes=[
            "keeping pupils, staff and families safe on the schools' official social media "
            "accounts (safeguarding);",
            "moderating replies to those accounts (hiding, reporting or answering abuse);",
            "keeping evidence of abuse or threats for the school, the local authority or the "
            "police when needed.",
        ],
        retention=[
            f"comments that raised no concern: {_days(keep.unflagged_items_days)}",
            f"comments that raised a concern: {_days(keep.flagged_items_days)}",
            f"evidence records: {_days(keep.evidence_days)}",
            f"closed cases and their history: {_days(keep.closed_cases_days)}",
        ],
        automated=automated,
    )


def sections(report: SubjectReport) -> list[Section]:
    """The report's sections, readable columns only, in the export's order."""
    return [
        Section(SECTION_TITLES[name], READABLE[name], rows)
        for name, rows in report.sections.items()
    ]
