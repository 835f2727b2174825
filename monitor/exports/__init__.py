"""Record exports: subject access by author handle (R14) and evidence for the DSL, LADO or police (R7).

Each export is a folder (or one zip) holding JSON (exact values), CSV (one file per kind of
record) and a self-contained HTML page (from ``templates/``, autoescaped), plus
``manifest.json`` with the SHA-256 of every file. Platform text is never trusted: the HTML
escapes everything, shows invisible and direction-changing characters as visible ``U+XXXX``
markers and keeps huge or combining-heavy text inside its box; CSV cells that a spreadsheet
would run as a formula are prefixed with ``'`` (the JSON keeps the exact text). Times are
given in UTC and Europe/London. Who may have a safeguarding case's content is decided by
``monitor.rules.visibility`` alone.

``format`` writes values, ``rows`` turns records into rows, ``bundle`` writes the files and
renders the pages, ``evidence`` and ``subject`` are the two exports.
"""

from __future__ import annotations

from monitor.exports.bundle import write_bundle
from monitor.exports.common import ExportRefused, ExportResult, UnknownCases, UnknownRequester
from monitor.exports.evidence import evidence_row_columns, export_evidence
from monitor.exports.format import (
    compact,
    london_text,
    normalise_handle,
    pretty,
    safe_link,
    shown,
    to_csv,
    to_json,
    utc_text,
)
from monitor.exports.rows import (
    action_row,
    assessment_row,
    case_row,
    evidence_row,
    history_row,
    item_row,
)
from monitor.exports.subject import (
    SUBJECT_SECTIONS,
    WITHHELD_NOTE,
    SubjectRecords,
    export_subject,
    find_subject,
    withhold,
)

__all__ = [
    "SUBJECT_SECTIONS",
    "WITHHELD_NOTE",
    "ExportRefused",
    "ExportResult",
    "SubjectRecords",
    "UnknownCases",
    "UnknownRequester",
    "action_row",
    "assessment_row",
    "case_row",
    "compact",
    "evidence_row",
    "evidence_row_columns",
    "export_evidence",
    "export_subject",
    "find_subject",
    "history_row",
    "item_row",
    "london_text",
    "normalise_handle",
    "pretty",
    "safe_link",
    "shown",
    "to_csv",
    "to_json",
    "utc_text",
    "withhold",
    "write_bundle",
]
