"""Record exports: subject access by author handle (R14) and evidence for the DSL, LADO or police (R7).

Each export is a folder (or one zip) holding JSON (exact values), CSV (one file per kind of
record) and a self-contained HTML page, plus ``manifest.json`` with the SHA-256 of every
file. Platform text is never trusted: the HTML escapes everything, shows invisible and
direction-changing characters as visible ``U+XXXX`` markers and keeps huge or combining-heavy
text inside its box; CSV cells that a spreadsheet would run as a formula are prefixed with
``'`` (the JSON keeps the exact text). Times are given in UTC and Europe/London.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor import audit
from monitor.clock import require_aware
from monitor.constants import DEFAULT_TIMEZONE, Category, ExportKind, Role
from monitor.directory import Directory, Person
from monitor.evidence import intact
from monitor.rules.permissions import evidence_export_kind, export_refusal
from monitor.rules.visibility import may_see_content
from monitor.storage import tables as t

LONDON = ZoneInfo(DEFAULT_TIMEZONE)
IN_CHUNK = 500  # ids per IN (...) list
# Unicode categories that render as nothing or change layout: control, format (bidi
# overrides, zero-width), private use, surrogates, line and paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})
_VISIBLE_CONTROLS = frozenset("\n\t")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_SAFE_NAME = re.compile(r"[^a-z0-9._-]+")


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


def _requester(directory: Directory, staff: str, via: str) -> Requester | None:
    person = directory.person(staff)
    # someone past their leaving date is no longer in post, even if still marked active
    if person is None or not directory.in_post(person):
        return None
    return Requester(person, directory.effective_roles(person), via)


def _unknown(staff: str) -> str:
    return f"no active member of staff {staff!r}"


@dataclass(frozen=True)
class ExportResult:
    """Where an export was written and how many records of each kind it holds."""

    path: Path
    files: tuple[str, ...]
    counts: Mapping[str, int] = field(default_factory=dict)
    # safeguarding records left out of a subject-access export, per section (R6)
    withheld: Mapping[str, int] = field(default_factory=dict)


# ------------------------------------------------------------- formatting helpers


def normalise_handle(handle: str) -> str:
    """The form handles are compared in: trimmed, leading ``@`` removed, case-folded."""
    return handle.strip().lstrip("@").casefold()


def utc_text(value: datetime | None) -> str:
    """``2026-11-23 09:30:00 UTC``, or empty when unknown."""
    if value is None:
        return ""
    return require_aware(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def london_text(value: datetime | None) -> str:
    """``2026-11-23 09:30:00 GMT`` (or BST) in Europe/London, or empty when unknown."""
    if value is None:
        return ""
    return require_aware(value).astimezone(LONDON).strftime("%Y-%m-%d %H:%M:%S %Z")


def _parse_time(value: Any) -> datetime | None:
    # snapshot times are ISO strings; anything else is shown as given
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _times(name: str, value: datetime | str | None) -> dict[str, str]:
    """``{name_utc, name_london}`` for a datetime or an ISO string."""
    when = value if isinstance(value, datetime) else _parse_time(value)
    if when is None and isinstance(value, str):
        return {f"{name}_utc": value, f"{name}_london": ""}
    return {f"{name}_utc": utc_text(when), f"{name}_london": london_text(when)}


def shown(value: Any) -> Markup:
    """HTML for untrusted text: escaped, with invisible characters made visible."""
    text = "" if value is None else str(value)
    parts: list[str] = []
    for char in text:
        if char not in _VISIBLE_CONTROLS and unicodedata.category(char) in _HIDDEN_CATEGORIES:
            parts.append(f'<span class="cp" title="hidden character">U+{ord(char):04X}</span>')
        else:
            parts.append(str(escape(char)))
    return Markup("".join(parts))  # noqa: S704 - every piece above is escaped or fixed markup


def safe_link(url: Any) -> Markup:
    """A link for http(s) URLs; anything else (``javascript:``, ``data:``) as plain text."""
    text = "" if url is None else str(url)
    if re.match(r"^https?://", text, flags=re.IGNORECASE):
        return Markup('<a href="{0}" rel="noopener noreferrer nofollow">{1}</a>').format(
            text, shown(text)
        )
    return shown(text)


def pretty(value: Any) -> str:
    """Indented JSON for showing a structured value (escape it with ``shown``)."""
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)


def compact(value: Any) -> str:
    """One-line JSON for a small structured value (escape it with ``shown``)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    text = str(value)
    # a spreadsheet would run these as formulas (CSV injection); the JSON keeps the original
    return "'" + text if text.startswith(_FORMULA_START) else text


def _encode(text: str) -> bytes:
    # backslashreplace: a lone surrogate (possible in SQLite text) cannot become UTF-8;
    # inside JSON the replacement is the standard \udxxx escape, so nothing is lost
    return text.encode("utf-8", errors="backslashreplace")


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> bytes:
    """CSV with a header row, UTF-8 with a byte-order mark (so Excel reads it as UTF-8)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return b"\xef\xbb\xbf" + _encode(buffer.getvalue())


def to_json(document: Any) -> bytes:
    """Indented JSON, UTF-8, keys in a stable order."""
    return _encode(json.dumps(document, ensure_ascii=False, indent=2, default=str) + "\n")


def _columns(rows: Sequence[Mapping[str, Any]], preferred: Sequence[str]) -> list[str]:
    seen = dict.fromkeys(preferred)
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), IN_CHUNK):
        yield ordered[start : start + IN_CHUNK]


# ------------------------------------------------------------- rows


def _keys(
    session: Session, model: type[t.Account] | type[t.School] | type[t.Staff]
) -> dict[int, str]:
    return {row.id: row.key for row in session.execute(select(model.id, model.key))}


@dataclass
class _Names:
    """Id to key maps, so exports name accounts, schools and staff as the config does."""

    accounts: dict[int, str]
    schools: dict[int, str]
    staff: dict[int, str]

    @classmethod
    def load(cls, session: Session) -> _Names:
        return cls(_keys(session, t.Account), _keys(session, t.School), _keys(session, t.Staff))


def item_row(item: t.Item, names: _Names) -> dict[str, Any]:
    """One stored item, every column."""
    return {
        "item_id": item.id,
        "platform": item.platform,
        "platform_id": item.platform_id,
        "account": names.accounts.get(item.account_id, str(item.account_id)),
        "stream": item.stream,
        "kind": item.kind,
        "url": item.url,
        "author_handle": item.author_handle,
        "author_id": item.author_id,
        "author_name": item.author_name,
        "text": item.text,
        **_times("posted_at", item.created_at),
        **_times("first_seen_at", item.seen_at),
        "parent_id": item.parent_id,
        "root_id": item.root_id,
        "is_own": item.is_own,
        "visibility": item.visibility,
        **_times("hidden_at", item.hidden_at),
        "flagged": item.flagged,
        "engagement": item.engagement,
        "raw": item.raw,
    }


def assessment_row(row: t.Assessment) -> dict[str, Any]:
    """One classifier and rules assessment."""
    return {
        "assessment_id": row.id,
        "item_id": row.item_id,
        "model": row.model,
        "severity": row.severity,
        "categories": row.categories,
        "scores": row.scores,
        "matches": row.matches,
        **_times("assessed_at", row.assessed_at),
        "needs_rescore": row.needs_rescore,
    }


def case_row(case: t.Case, names: _Names) -> dict[str, Any]:
    """One case, every column."""
    return {
        "case_id": case.id,
        "category": case.category,
        "severity": case.severity,
        "state": case.state,
        "restricted": case.restricted,
        "title": case.title,
        "school": names.schools.get(case.school_id) if case.school_id else None,
        "account": names.accounts.get(case.account_id) if case.account_id else None,
        "item_id": case.item_id,
        "assignee": names.staff.get(case.assignee_id) if case.assignee_id else None,
        **_times("opened_at", case.opened_at),
        **_times("due_at", case.due_at),
        **_times("responded_at", case.responded_at),
        **_times("closed_at", case.closed_at),
        "cannot_hide": case.cannot_hide,
        "police_step": case.police_step,
        "dedupe_key": case.dedupe_key,
        "details": case.details,
    }


def history_row(event: t.AuditEvent) -> dict[str, Any]:
    """One audit event of a case, with its chain hash."""
    return {
        "case_id": event.case_id,
        "seq": event.seq,
        **_times("at", event.at),
        "actor": event.actor,
        "action": event.action,
        "reason": event.reason,
        "details": event.details,
        "hash": event.hash,
        "prev_hash": event.prev_hash,
    }


def evidence_row(record: t.Evidence) -> dict[str, Any]:
    """One evidence record: the main snapshot fields, its hash and whether it still matches."""
    snap = record.snapshot if isinstance(record.snapshot, dict) else {}
    return {
        "evidence_id": record.id,
        "case_id": record.case_id,
        "item_id": record.item_id,
        "platform": snap.get("platform"),
        "platform_id": snap.get("platform_id"),
        "account": snap.get("account"),
        "url": snap.get("url"),
        "author_handle": snap.get("author_handle"),
        "author_id": snap.get("author_id"),
        "author_name": snap.get("author_name"),
        "text": snap.get("text"),
        **_times("posted_at", snap.get("posted_at")),
        **_times("first_seen_at", snap.get("first_seen_at")),
        **_times("captured_at", record.captured_at),
        "captured_by": record.captured_by,
        "categories": snap.get("categories"),
        "rules": snap.get("rules"),
        "scores": snap.get("scores"),
        "sha256": record.sha256,
        "intact": intact(record),
    }


def action_row(row: t.ActionRequest, names: _Names) -> dict[str, Any]:
    """One requested action (hide, block, reply...) on an item."""
    return {
        "action_id": row.id,
        "case_id": row.case_id,
        "item_id": row.item_id,
        "account": names.accounts.get(row.account_id) if row.account_id else None,
        "kind": row.kind,
        "status": row.status,
        "requested_by": row.requested_by,
        **_times("requested_at", row.requested_at),
        **_times("done_at", row.done_at),
        "reason": row.reason,
        "params": row.params,
        "result": row.result,
    }


# ------------------------------------------------------------- writing


def _stamp(now: datetime) -> str:
    return require_aware(now).strftime("%Y%m%dT%H%M%SZ")


def _free_path(out: Path, stem: str, suffix: str) -> Path:
    candidate = out / f"{stem}{suffix}"
    n = 2
    while candidate.exists():
        candidate = out / f"{stem}-{n}{suffix}"
        n += 1
    return candidate


def write_bundle(out: Path, stem: str, files: Mapping[str, bytes], *, as_zip: bool) -> Path:
    """Write ``files`` plus a SHA-256 manifest as ``out/stem/`` or ``out/stem.zip``."""
    manifest = {
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())}
    }
    everything = {**files, "manifest.json": to_json(manifest)}
    out.mkdir(parents=True, exist_ok=True)
    if as_zip:
        target = _free_path(out, stem, ".zip")
        with zipfile.ZipFile(target, "x", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in everything.items():
                archive.writestr(f"{target.stem}/{name}", data)
        target.chmod(0o600)
        return target
    target = _free_path(out, stem, "")
    # personal data: readable by the exporting user only
    target.mkdir(mode=0o700)
    for name, data in everything.items():
        path = target / name
        path.write_bytes(data)
        path.chmod(0o600)
    return target


def _environment() -> Environment:
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True)
    env.filters["shown"] = shown
    env.filters["link"] = safe_link
    env.filters["pretty"] = pretty
    env.filters["compact"] = compact
    return env


_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em;
  color: #111; }
h1, h2, h3 { line-height: 1.2; }
table { border-collapse: collapse; width: 100%; margin: .5em 0 1.5em; table-layout: fixed; }
th, td { border: 1px solid #bbb; padding: .3em .5em; text-align: left; vertical-align: top;
  overflow: hidden; overflow-wrap: anywhere; unicode-bidi: isolate; }
th { background: #eee; width: 14em; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; word-break: break-word;
  unicode-bidi: isolate; overflow: hidden; line-height: 1.5; border: 1px solid #888;
  padding: .6em; background: #fafafa; max-height: 40em; overflow-y: auto; }
.withheld { background: #fff4e0; border-left: 4px solid #c60; padding: .5em 1em; }
.cp { font: 11px monospace; background: #ffd; border: 1px solid #cc9; padding: 0 2px; }
.bad { color: #a00; font-weight: bold; }
.ok { color: #060; font-weight: bold; }
.record { border: 2px solid #444; padding: 0 1em 1em; margin: 1.5em 0; }
code { overflow-wrap: anywhere; }
@media print { .text { max-height: none; overflow: visible; } details { display: block; } }
"""

_MACROS = """{% macro when(london, utc) %}{% if utc %}{{ london }} / {{ utc }}{% else %}—{% endif %}
{%- endmacro %}"""

_HEAD = (
    _MACROS
    + """<!DOCTYPE html>
<html lang="en-GB"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="referrer" content="no-referrer">
<title>{{ title }}</title><style>{{ style }}</style></head><body>
"""
)

_EVIDENCE_TEMPLATE = (
    _HEAD
    + """
<h1>{{ title }}</h1>
<p>Generated {{ generated.utc }} ({{ generated.london }}, Europe/London) by {{ actor | shown }}.
All platform text below is shown exactly as captured; characters that would be invisible or
reorder text are shown as <span class="cp">U+XXXX</span> markers.</p>
<p>Audit log: {% if chain.intact %}<span class="ok">hash chain verified</span>{% else %}
<span class="bad">HASH CHAIN BROKEN</span>{% endif %} ({{ chain.events_checked }} events checked
{%- for b in chain.breaks %}; break at event {{ b.seq }}: {{ b.problem }}{% endfor %}).</p>
{% for case in cases %}
<h2>Case {{ case.case_id }}: {{ case.title | shown }}</h2>
<table>
<tr><th>Category</th><td>{{ case.category }}</td></tr>
<tr><th>Severity</th><td>{{ case.severity }}</td></tr>
<tr><th>State</th><td>{{ case.state }}</td></tr>
<tr><th>School</th><td>{{ case.school or "" }}</td></tr>
<tr><th>Account</th><td>{{ case.account or "" }}</td></tr>
<tr><th>Opened</th><td>{{ when(case.opened_at_london, case.opened_at_utc) }}</td></tr>
<tr><th>Closed</th><td>{{ when(case.closed_at_london, case.closed_at_utc) }}</td></tr>
<tr><th>Police step</th><td>{{ case.police_step or "" }}</td></tr>
</table>
<h3>Evidence records ({{ case.evidence | length }})</h3>
{% for ev in case.evidence %}
<div class="record">
<h4>Evidence {{ ev.evidence_id }}</h4>
<table>
<tr><th>Intact</th><td>{% if ev.intact %}<span class="ok">yes: the record matches its
SHA-256</span>{% else %}<span class="bad">NO: the record no longer matches its SHA-256
</span>{% endif %}</td></tr>
<tr><th>SHA-256</th><td><code>{{ ev.sha256 }}</code></td></tr>
<tr><th>Platform</th><td>{{ ev.platform | shown }}</td></tr>
<tr><th>Account</th><td>{{ ev.account | shown }}</td></tr>
<tr><th>Address (URL)</th><td>{{ ev.url | link }}</td></tr>
<tr><th>Author handle</th><td>{{ ev.author_handle | shown }}</td></tr>
<tr><th>Author id</th><td>{{ ev.author_id | shown }}</td></tr>
<tr><th>Author name</th><td>{{ ev.author_name | shown }}</td></tr>
<tr><th>Platform id</th><td>{{ ev.platform_id | shown }}</td></tr>
<tr><th>Posted</th><td>{{ when(ev.posted_at_london, ev.posted_at_utc | shown) }}</td></tr>
<tr><th>First seen</th><td>{{ when(ev.first_seen_at_london, ev.first_seen_at_utc | shown) }}</td></tr>
<tr><th>Captured</th><td>{{ when(ev.captured_at_london, ev.captured_at_utc) }}</td></tr>
<tr><th>Captured by</th><td>{{ ev.captured_by | shown }}</td></tr>
<tr><th>Categories</th><td>{{ ev.categories | compact | shown }}</td></tr>
<tr><th>Rules</th><td>{{ ev.rules | compact | shown }}</td></tr>
<tr><th>Scores</th><td>{{ ev.scores | compact | shown }}</td></tr>
</table>
<p>Text ({{ (ev.text or "") | length }} characters):</p>
<div class="text">{{ ev.text | shown }}</div>
<details><summary>Full snapshot (the hashed record)</summary>
<div class="text">{{ ev.snapshot_json | shown }}</div></details>
</div>
{% else %}
<p>No evidence records for this case.</p>
{% endfor %}
<h3>Case history (audit log)</h3>
<table>
<tr><th>Event</th><th>Europe/London</th><th>UTC</th><th>By</th><th>What</th><th>Reason</th>
<th>Details</th></tr>
{% for ev in case.history %}
<tr><td>{{ ev.seq }}</td><td>{{ ev.at_london }}</td><td>{{ ev.at_utc }}</td>
<td>{{ ev.actor | shown }}</td><td>{{ ev.action | shown }}</td><td>{{ ev.reason | shown }}</td>
<td>{{ ev.details | compact | shown }}</td></tr>
{% endfor %}
</table>
{% endfor %}
<h2>How to check these records</h2>
<p>Each SHA-256 covers the record's snapshot in <code>evidence.json</code> serialised as JSON
with sorted keys, no spaces and UTF-8 text. <code>manifest.json</code> holds the SHA-256 of
every file in this export.</p>
</body></html>
"""
)

_SUBJECT_TEMPLATE = (
    _HEAD
    + """
<h1>{{ title }}</h1>
<p>Subject-access export for the handle <strong>{{ query | shown }}</strong>, matched without
regard to case or a leading @. Handles found: {% for h in handles %}<code>{{ h | shown }}</code>
{%- if not loop.last %}, {% endif %}{% else %}none{% endfor %}.
Generated {{ generated.utc }} ({{ generated.london }}, Europe/London) by {{ actor | shown }}.
Review and redact third-party data before release.</p>
{% if withheld_total %}
<p class="withheld"><strong>{{ withheld_note }}</strong> Withheld:
{% for section in sections if section.withheld %}{{ section.title | lower }} {{ section.withheld }}
{%- if not loop.last %}; {% endif %}{% endfor %}.</p>
{% endif %}
<table>
{% for name, n in counts.items() %}<tr><th>{{ name }}</th><td>{{ n }}</td></tr>{% endfor %}
{% if withheld_total %}<tr><th>withheld (safeguarding)</th><td>{{ withheld_total }}</td></tr>{% endif %}
</table>
{% for section in sections %}
<h2>{{ section.title }} ({{ section.rows | length }})</h2>
{% if section.withheld %}<p class="withheld">{{ section.withheld }} withheld: {{ withheld_note }}</p>
{% endif %}
{% for row in section.rows %}
<table>
{% for key in section.columns %}
<tr><th>{{ key }}</th><td>{% if key == "text" %}<div class="text">{{ row.get(key) | shown }}</div>
{%- elif row.get(key) is mapping or (row.get(key) is iterable and row.get(key) is not string) %}
<div class="text">{{ row.get(key) | pretty | shown }}</div>
{%- else %}{{ row.get(key) | shown }}{% endif %}</td></tr>
{% endfor %}
</table>
{% endfor %}
{% endfor %}
<p>The same records are in <code>subject.json</code> (exact values) and one CSV file per
section; <code>manifest.json</code> holds the SHA-256 of every file.</p>
</body></html>
"""
)


# ------------------------------------------------------------- evidence export (R7)


def _evidence_refusals(
    session: Session,
    cases: Sequence[t.Case],
    requester: Requester | None,
    staff: str,
    directory: Directory,
) -> dict[int, str]:
    """Why each case's evidence may not go to ``requester`` (none: the export may go ahead)."""
    schools = {s.id: s.key for s in session.scalars(select(t.School))}
    refusals: dict[int, str] = {}
    for case in cases:
        if requester is None:
            refusals[case.id] = _unknown(staff)
            continue
        kind = evidence_export_kind(category=Category(case.category), restricted=case.restricted)
        school = schools.get(case.school_id) if case.school_id is not None else None
        sight = may_see_content(
            directory,
            requester.person,
            school_key=school,
            category=Category(case.category),
            restricted=case.restricted,
        )
        why = export_refusal(
            requester.roles,
            kind,
            serves_school=requester.person.serves(school),
            content=sight.access,
        )
        if why:
            refusals[case.id] = why
    return refusals


def export_evidence(
    session: Session,
    case_ids: Sequence[int],
    out: Path,
    *,
    now: datetime,
    staff: str,
    directory: Directory,
    via: str,
    as_zip: bool = False,
) -> ExportResult:
    """Write the evidence and history of ``case_ids`` for the DSL, LADO or police.

    Only for the roles ``EXPORT_ROLES`` names, of the cases' schools (R6, R7): a refusal
    writes nothing and appends a ``case.evidence_export_refused`` audit event per refused
    case. An export appends one ``case.evidence_exported`` event per case (chain of custody).
    """
    wanted = sorted(set(case_ids))
    if not wanted:
        raise ValueError("give at least one case id")
    found = {
        c.id: c
        for chunk in _chunks(wanted)
        for c in session.scalars(select(t.Case).where(t.Case.id.in_(chunk)))
    }
    missing = [cid for cid in wanted if cid not in found]
    if missing:
        raise UnknownCases(missing)
    requester = _requester(directory, staff, via)
    refusals = _evidence_refusals(
        session, [found[cid] for cid in wanted], requester, staff, directory
    )
    for cid, why in refusals.items():
        audit.record(
            session,
            at=now,
            actor=requester.person.key if requester else via,
            action="case.evidence_export_refused",
            subject=f"case:{cid}",
            case_id=cid,
            reason=why,
            details={"as": staff, "os_user": via},
        )
    if requester is None:
        raise UnknownRequester(_unknown(staff))
    if refusals:
        raise ExportRefused("; ".join(f"case {cid}: {why}" for cid, why in refusals.items()))
    actor = requester.person.key
    names = _Names.load(session)
    evidence_rows: list[dict[str, Any]] = []
    history_rows: list[dict[str, Any]] = []
    document_cases: list[dict[str, Any]] = []
    report_cases: list[dict[str, Any]] = []
    for cid in wanted:
        case = case_row(found[cid], names)
        records = session.scalars(
            select(t.Evidence).where(t.Evidence.case_id == cid).order_by(t.Evidence.id)
        ).all()
        events = session.scalars(
            select(t.AuditEvent).where(t.AuditEvent.case_id == cid).order_by(t.AuditEvent.seq)
        ).all()
        rows = [evidence_row(r) for r in records]
        history = [history_row(e) for e in events]
        evidence_rows += rows
        history_rows += history
        document_cases.append(
            {
                **case,
                "evidence": [
                    {**row, "snapshot": record.snapshot}
                    for row, record in zip(rows, records, strict=True)
                ],
                "history": history,
            }
        )
        report_cases.append(
            {
                **case,
                "evidence": [
                    {
                        **row,
                        "snapshot_json": pretty(record.snapshot),
                    }
                    for row, record in zip(rows, records, strict=True)
                ],
                "history": history,
            }
        )
    checked, breaks = audit.verify_chain(session)
    chain = {
        "events_checked": checked,
        "intact": not breaks,
        "breaks": [{"seq": b.seq, "problem": b.problem} for b in breaks],
    }
    generated = {"utc": utc_text(now), "london": london_text(now)}
    title = "Evidence report: case " + ", ".join(str(c) for c in wanted)
    html = (
        _environment()
        .from_string(_EVIDENCE_TEMPLATE)
        .render(
            title=title,
            style=_STYLE,
            generated=generated,
            actor=requester.label,
            chain=chain,
            cases=report_cases,
        )
    )
    evidence_columns = _columns(evidence_rows, list(evidence_row_columns()))
    files = {
        "report.html": _encode(html),
        "evidence.csv": to_csv(evidence_rows, evidence_columns),
        "case_history.csv": to_csv(history_rows, _columns(history_rows, [])),
        "evidence.json": to_json(
            {
                "generated_at_utc": generated["utc"],
                "generated_at_london": generated["london"],
                "generated_by": actor,
                "generated_by_name": requester.person.name,
                "generated_via": via,
                "audit_chain": chain,
                "hash_rule": "sha256 of the snapshot as JSON, sorted keys, separators (',', ':'), UTF-8",
                "cases": document_cases,
            }
        ),
    }
    stem = (
        "evidence-case-" + "-".join(str(c) for c in wanted)
        if len(wanted) <= 5
        else f"evidence-{len(wanted)}-cases"
    ) + f"-{_stamp(now)}"
    path = write_bundle(out, stem, files, as_zip=as_zip)
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    for cid in wanted:
        audit.record(
            session,
            at=now,
            actor=actor,
            action="case.evidence_exported",
            subject=f"case:{cid}",
            case_id=cid,
            details={
                "evidence_ids": [r["evidence_id"] for r in evidence_rows if r["case_id"] == cid],
                "files": digests,
                "os_user": via,
            },
        )
    return ExportResult(
        path=path,
        files=tuple(sorted([*files, "manifest.json"])),
        counts={
            "cases": len(wanted),
            "evidence": len(evidence_rows),
            "history": len(history_rows),
            "not_intact": sum(1 for r in evidence_rows if not r["intact"]),
        },
    )


def evidence_row_columns() -> tuple[str, ...]:
    """The evidence CSV's columns, in order."""
    return (
        "case_id",
        "evidence_id",
        "intact",
        "sha256",
        "platform",
        "account",
        "url",
        "author_handle",
        "author_id",
        "author_name",
        "text",
        "posted_at_london",
        "posted_at_utc",
        "captured_at_london",
        "captured_at_utc",
    )


# ------------------------------------------------------------- subject access (R14)


@dataclass
class SubjectRecords:
    """Everything held about one author."""

    query: str
    handles: list[str]
    items: list[t.Item]
    assessments: list[t.Assessment]
    cases: list[t.Case]
    history: list[t.AuditEvent]
    evidence: list[t.Evidence]
    actions: list[t.ActionRequest]


def _in_chunks(session: Session, model: Any, column: Any, ids: Iterable[int]) -> list[Any]:
    rows: list[Any] = []
    for chunk in _chunks(ids):
        rows += session.scalars(select(model).where(column.in_(chunk))).all()
    return sorted(rows, key=lambda r: r.id)


def find_subject(session: Session, handle: str) -> SubjectRecords:
    """Items, assessments, cases (with history), evidence and actions about one author.

    An item belongs to the subject when its handle matches, or when it has the same
    platform and author id as a matching item (the person changed handle). Evidence
    matches on its snapshot too, so it is found after the item itself was purged.
    """
    wanted = normalise_handle(handle)
    if not wanted:
        raise ValueError("give a handle")
    # Compare in Python: SQLite's lower() only folds ASCII, and casefold() is stricter.
    handles = sorted(
        h
        for h in session.scalars(select(t.Item.author_handle).distinct())
        if normalise_handle(h) == wanted
    )
    items: dict[int, t.Item] = {}
    if handles:
        for row in session.scalars(select(t.Item).where(t.Item.author_handle.in_(handles))):
            items[row.id] = row
    authors = {(i.platform, i.author_id) for i in items.values() if i.author_id}
    for platform, author_id in sorted(authors):
        for row in session.scalars(
            select(t.Item).where(t.Item.platform == platform, t.Item.author_id == author_id)
        ):
            items[row.id] = row
    evidence: list[t.Evidence] = []
    after = 0
    while True:  # evidence is scanned in pages: its snapshot is JSON
        page = session.scalars(
            select(t.Evidence).where(t.Evidence.id > after).order_by(t.Evidence.id).limit(IN_CHUNK)
        ).all()
        if not page:
            break
        after = page[-1].id
        for record in page:
            snap = record.snapshot if isinstance(record.snapshot, dict) else {}
            by_handle = normalise_handle(str(snap.get("author_handle") or "")) == wanted
            by_author = (snap.get("platform"), snap.get("author_id")) in authors
            if record.item_id in items or by_handle or by_author:
                evidence.append(record)
    case_ids = {r.case_id for r in evidence if r.case_id is not None}
    case_ids |= {
        cid
        for chunk in _chunks(items)
        for cid in session.scalars(select(t.Case.id).where(t.Case.item_id.in_(chunk)))
    }
    return SubjectRecords(
        query=handle,
        handles=sorted({*handles, *(i.author_handle for i in items.values())}),
        items=sorted(items.values(), key=lambda i: i.id),
        assessments=_in_chunks(session, t.Assessment, t.Assessment.item_id, items),
        cases=_in_chunks(session, t.Case, t.Case.id, case_ids),
        history=sorted(
            _in_chunks(session, t.AuditEvent, t.AuditEvent.case_id, case_ids),
            key=lambda e: e.seq,
        ),
        evidence=evidence,
        actions=_in_chunks(session, t.ActionRequest, t.ActionRequest.item_id, items),
    )


WITHHELD_NOTE = (
    "A safeguarding record exists about this person and must be reviewed by the DSL "
    "before release; only the number of records is shown here."
)
SUBJECT_SECTIONS: tuple[str, ...] = (
    "items",
    "assessments",
    "cases",
    "case_history",
    "evidence",
    "actions",
)


def withhold(
    found: SubjectRecords, case_ids: Iterable[int]
) -> tuple[SubjectRecords, dict[str, int]]:
    """``found`` without these cases, their items and everything about them; counts left out."""
    cases_out = frozenset(case_ids)
    items_out = frozenset(c.item_id for c in found.cases if c.id in cases_out and c.item_id)
    kept = replace(
        found,
        items=[i for i in found.items if i.id not in items_out],
        assessments=[a for a in found.assessments if a.item_id not in items_out],
        cases=[c for c in found.cases if c.id not in cases_out],
        history=[e for e in found.history if e.case_id not in cases_out],
        evidence=[
            r for r in found.evidence if r.case_id not in cases_out and r.item_id not in items_out
        ],
        actions=[
            a for a in found.actions if a.case_id not in cases_out and a.item_id not in items_out
        ],
    )
    before = _section_sizes(found)
    after = _section_sizes(kept)
    return kept, {name: before[name] - after[name] for name in SUBJECT_SECTIONS}


def _section_sizes(found: SubjectRecords) -> dict[str, int]:
    return {
        "items": len(found.items),
        "assessments": len(found.assessments),
        "cases": len(found.cases),
        "case_history": len(found.history),
        "evidence": len(found.evidence),
        "actions": len(found.actions),
    }


def _safeguarding_withheld_from(
    session: Session, found: SubjectRecords, requester: Requester, directory: Directory
) -> list[int]:
    """The subject's safeguarding cases whose content ``requester`` may not have (R6)."""
    schools = _keys(session, t.School)
    return [
        case.id
        for case in found.cases
        if not may_see_content(
            directory,
            requester.person,
            school_key=schools.get(case.school_id) if case.school_id is not None else None,
            category=Category(case.category),
            restricted=case.restricted,
        ).allowed
    ]


def export_subject(
    session: Session,
    handle: str,
    out: Path,
    *,
    now: datetime,
    staff: str,
    directory: Directory,
    via: str,
    as_zip: bool = False,
) -> ExportResult:
    """Write everything held about the author ``handle`` (a subject-access request).

    Only for the roles ``EXPORT_ROLES`` names (R14): a refusal writes nothing and appends a
    ``records.subject_export_refused`` audit event. An export appends one
    ``records.subject_exported`` event. Both hold no handle: the audit log is never purged,
    so it must not keep the subject's. For anyone but the DSL and deputies of the case's
    school, a safeguarding case, its items and everything about them are left out: each
    section says how many records were withheld, and that the DSL must review them (R6).
    """
    requester = _requester(directory, staff, via)
    why = (
        _unknown(staff)
        if requester is None
        else export_refusal(requester.roles, ExportKind.SUBJECT_ACCESS)
    )
    if why:
        audit.record(
            session,
            at=now,
            actor=requester.person.key if requester else via,
            action="records.subject_export_refused",
            subject="subject-access",
            reason=why,
            details={"as": staff, "os_user": via},
        )
        raise ExportRefused(why) if requester else UnknownRequester(why)
    assert requester is not None
    actor = requester.person.key
    everything = find_subject(session, handle)
    found, withheld = withhold(
        everything, _safeguarding_withheld_from(session, everything, requester, directory)
    )
    names = _Names.load(session)
    sections = {
        "items": [item_row(i, names) for i in found.items],
        "assessments": [assessment_row(a) for a in found.assessments],
        "cases": [case_row(c, names) for c in found.cases],
        "case_history": [history_row(e) for e in found.history],
        "evidence": [{**evidence_row(r), "snapshot": r.snapshot} for r in found.evidence],
        "actions": [action_row(a, names) for a in found.actions],
    }
    counts = {name: len(rows) for name, rows in sections.items()}
    withheld_total = sum(withheld.values())
    # the placeholder row stands in for what was left out: counts only, never content
    listed = {
        name: rows
        + (
            [{"withheld_safeguarding_records": withheld[name], "note": WITHHELD_NOTE}]
            if withheld[name]
            else []
        )
        for name, rows in sections.items()
    }
    generated = {"utc": utc_text(now), "london": london_text(now)}
    titles = {
        "items": "Posts and comments",
        "assessments": "Automated assessments",
        "cases": "Cases",
        "case_history": "Case history",
        "evidence": "Evidence records",
        "actions": "Actions taken",
    }
    html = (
        _environment()
        .from_string(_SUBJECT_TEMPLATE)
        .render(
            title="Subject-access export",
            style=_STYLE,
            query=handle,
            handles=found.handles,
            generated=generated,
            actor=requester.label,
            counts=counts,
            withheld=withheld,
            withheld_total=withheld_total,
            withheld_note=WITHHELD_NOTE,
            sections=[
                {
                    "title": titles[name],
                    "rows": rows,
                    "columns": _columns(rows, []),
                    "withheld": withheld[name],
                }
                for name, rows in sections.items()
            ],
        )
    )
    files: dict[str, bytes] = {
        "index.html": _encode(html),
        "subject.json": to_json(
            {
                "query": handle,
                "matched_handles": found.handles,
                "generated_at_utc": generated["utc"],
                "generated_at_london": generated["london"],
                "generated_by": actor,
                "generated_by_name": requester.person.name,
                "generated_via": via,
                "withheld_safeguarding": {"note": WITHHELD_NOTE, "counts": withheld}
                if withheld_total
                else None,
                **listed,
            }
        ),
    }
    for name, rows in listed.items():
        plain = [{k: v for k, v in row.items() if k != "snapshot"} for row in rows]
        files[f"{name}.csv"] = to_csv(plain, _columns(plain, []))
    slug = _SAFE_NAME.sub("_", normalise_handle(handle))[:60].strip("._") or "subject"
    path = write_bundle(out, f"subject-{slug}-{_stamp(now)}", files, as_zip=as_zip)
    audit.record(
        session,
        at=now,
        actor=actor,
        action="records.subject_exported",
        subject="subject-access",
        details={
            "counts": counts,
            "os_user": via,
            **({"withheld_safeguarding": withheld} if withheld_total else {}),
        },
    )
    return ExportResult(
        path=path,
        files=tuple(sorted([*files, "manifest.json"])),
        counts=counts,
        withheld={name: n for name, n in withheld.items() if n},
    )
