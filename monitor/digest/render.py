"""The digest as an email: a subject, a plain-text part, HTML with inline PNG charts.

HTML is built for mail clients (Outlook's Word engine, Gmail): nested tables, inline styles,
600 pixels wide, no stylesheet, no script, charts referenced by ``cid:``. Jinja autoescaping
is on for HTML, and every name that comes from the configuration or a platform (schools,
accounts, handles, staff) also goes through ``clean`` (no control or bidi characters, one
line, length-limited). Safeguarding appears as counts only: the figures carry nothing else.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from connectors.registry import manifests
from monitor.digest.charts import trend_charts
from monitor.digest.figures import AdminProblem, DecisionCase, DigestFigures
from monitor.notify.escape import clean_text, safe_url, truncate
from monitor.web.links import case_url

TEMPLATES = Path(__file__).resolve().parent / "templates"
NAME_LIMIT = 80
EM_DASH = "—"
MINUTE, HOUR, DAY = 60, 3600, 86400  # seconds

CATEGORY_LABELS: dict[str, str] = {
    "safeguarding": "Safeguarding concern",
    "threat": "Threat or intimidation",
    "personal_data": "Personal data exposed",
    "abusive": "Abusive",
    "media_enquiry": "Media enquiry",
    "negative_mention": "Negative public mention",
    "needs_response": "Query needing a response",
    "monitoring_gap": "Monitoring gap",
    "two_admins": "Fewer than two administrators",
    "account_register": "Account register incomplete",
    "credential_rotation": "Credentials to rotate",
    "safeguarding_no_dsl": "Safeguarding case without a DSL",
    "school_without_dsl": "School without a DSL in post",
    "removal_overdue": "Still visible after removal",
    "classifier_down": "Classifier down",
    "connector_auth": "Platform login failing",
    "delivery_failed": "Alert delivery failed",
    "item_quarantined": "Item quarantined (refused by the database)",
}
PLATFORM_LABELS = {platform.value: declared.label for platform, declared in manifests().items()}
CHART_TITLES = {
    "trend-items": "Items seen",
    "trend-flagged": "Flagged",
    "trend-compliance": "Response compliance",
}


# at most this many lines per group of "Needs your decision"; the rest are counted
DECISION_LINES = 8


@dataclass(frozen=True)
class DecisionLine:
    """One thing that waits on a leader, in words, with its case page when there is one."""

    text: str
    url: str | None = None


@dataclass(frozen=True)
class DecisionGroup:
    """One kind of decision ("Replies missed") and its lines."""

    title: str
    lines: tuple[DecisionLine, ...]
    more: int  # beyond DECISION_LINES, in the dashboard

    @property
    def count(self) -> int:
        """How many of this kind wait on a decision."""
        return len(self.lines) + self.more

    @property
    def short(self) -> str:
        """``2 replies missed``: for the inbox preview line."""
        one, many = SHORT_LABELS[self.title]
        return f"{self.count} {one if self.count == 1 else many}"


# the inbox preview line's words for each group (singular, plural)
SHORT_LABELS = {
    "Replies missed": ("reply missed", "replies missed"),
    "Media enquiries waiting": ("media enquiry waiting", "media enquiries waiting"),
    "Accounts below two administrators": ("account below two admins", "accounts below two admins"),
    "Content still visible past its target": ("item still visible", "items still visible"),
    "Leavers without a successor": ("leaver without a successor", "leavers without a successor"),
    "Police decisions pending": ("police decision pending", "police decisions pending"),
}


@dataclass(frozen=True)
class RenderedDigest:
    """One digest ready to send."""

    subject: str
    text: str
    html: str
    images: Mapping[str, bytes]  # Content-ID -> PNG


def clean(value: object, limit: int = NAME_LIMIT) -> str:
    """Untrusted text on one line, without control or bidi characters, at most ``limit``."""
    flat = " ".join(clean_text(str(value)).split())
    return truncate(flat, limit) if flat else EM_DASH


def duration(seconds: float | None) -> str:
    """``45s``, ``12 min``, ``5h 03m`` or ``3d 4h``."""
    if seconds is None:
        return EM_DASH
    whole = round(seconds)
    if whole < MINUTE:
        return f"{whole}s"
    if whole < HOUR:
        return f"{whole // MINUTE} min"
    if whole < 2 * DAY:
        return f"{whole // HOUR}h {whole % HOUR // MINUTE:02d}m"
    return f"{whole // DAY}d {whole % DAY // HOUR}h"


def pct(value: float | None) -> str:
    """``97%`` or ``96.7%``; an em dash when nothing was measured."""
    if value is None:
        return EM_DASH
    text = f"{value:.1f}"
    return (text[:-2] if text.endswith(".0") else text) + "%"


def number(value: int) -> str:
    """``12,345``."""
    return f"{value:,}"


def category(value: str) -> str:
    """A category's label."""
    return CATEGORY_LABELS.get(value, value.replace("_", " ").capitalize())


def platform(value: str) -> str:
    """A platform's label."""
    return PLATFORM_LABELS.get(value, value.capitalize())


@functools.lru_cache(maxsize=8)
def _environment(timezone: str) -> Environment:
    # cached: compiling the templates costs more than rendering them
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(
            enabled_extensions=("html",), disabled_extensions=("txt",), default=True
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    zone = ZoneInfo(timezone)

    def when(value: datetime | None) -> str:
        if value is None:
            return EM_DASH
        return value.astimezone(zone).strftime("%a %d %b %Y %H:%M %Z")

    def day(value: date | datetime) -> str:
        if isinstance(value, datetime):
            value = value.astimezone(zone).date()
        return value.strftime("%a %d %b %Y")

    env.filters.update(
        clean=clean,
        duration=duration,
        pct=pct,
        number=number,
        category=category,
        platform=platform,
        when=when,
        day=day,
    )
    return env


def _where(case: DecisionCase, is_trust: bool) -> str:
    if case.withheld:
        return "a safeguarding matter (the DSL has the details)"
    place = clean(case.account, 60) if case.account else "no account"
    if case.platform:
        place += f" ({platform(case.platform)}"
        place += f", {clean(case.school, 30)})" if is_trust and case.school else ")"
    return place


def _holder(case: DecisionCase) -> str:
    if case.withheld:
        return ""
    return f"; held by {clean(case.holder, 60)}" if case.holder else "; nobody holds it"


def _admin_line(problem: AdminProblem, is_trust: bool) -> str:
    if not problem.account:
        leaver = f" for {clean(problem.leaver, 60)}" if problem.leaver else ""
        return f"A handover{leaver} is blocked: it would leave an account with one administrator"
    school = f", {clean(problem.school, 30)}" if is_trust and problem.school else ""
    admins = problem.admins if problem.admins is not None else "fewer than 2"
    plural = "" if problem.admins == 1 else "s"
    return (
        f"{clean(problem.handle, 60)} ({platform(problem.platform or '')}{school}) has "
        f"{admins} active administrator{plural}: name a second"
    )


def decision_groups(
    figures: DigestFigures, *, when: Callable[[datetime], str], base: str | None
) -> list[DecisionGroup]:
    """ "Needs your decision", in words: only the groups with something in them."""
    d = figures.decisions
    is_trust = figures.school_name is None

    def link(case: DecisionCase) -> str | None:
        return case_url(base, case.case_id)

    groups: list[tuple[str, list[DecisionLine]]] = [
        (
            "Replies missed",
            [
                DecisionLine(
                    f"Case {c.case_id}: a query on {_where(c, is_trust)}, "
                    f"due {when(c.since)}, unanswered{_holder(c)}",
                    link(c),
                )
                for c in d.missed_replies
            ],
        ),
        (
            "Media enquiries waiting",
            [
                DecisionLine(
                    f"Case {c.case_id}: on {_where(c, is_trust)}, since {when(c.since)}{_holder(c)}",
                    link(c),
                )
                for c in d.media_waiting
            ],
        ),
        (
            "Accounts below two administrators",
            [DecisionLine(_admin_line(p, is_trust)) for p in d.two_admins],
        ),
        (
            "Content still visible past its target",
            [
                DecisionLine(
                    f"Case {c.case_id}: on {_where(c, is_trust)}, since {when(c.since)}"
                    f"{_holder(c)}",
                    link(c),
                )
                for c in d.still_visible
            ],
        ),
        (
            "Leavers without a successor",
            [
                DecisionLine(
                    f"{clean(p.name, 60)} leaves on {p.leaving_on:%a %d %b %Y}"
                    + (" (already past)" if p.overdue else "")
                    + ": name a successor"
                )
                for p in d.leavers_without_successor
            ],
        ),
        (
            "Police decisions pending",
            [
                DecisionLine(
                    f"Case {c.case_id}: {category(c.category).lower()} on {_where(c, is_trust)}, "
                    f"since {when(c.since)}: report to the police, or record why not",
                    link(c),
                )
                for c in d.police_pending
            ],
        ),
    ]
    return [
        DecisionGroup(title, tuple(lines[:DECISION_LINES]), max(0, len(lines) - DECISION_LINES))
        for title, lines in groups
        if lines
    ]


def preheader(figures: DigestFigures, groups: list[DecisionGroup]) -> str:
    """The inbox preview line: what needs a decision, then the headline figures."""
    if groups:
        lead = "Needs your decision: " + ", ".join(g.short for g in groups) + "."
    else:
        lead = "Nothing needs your decision."
    figures_line = (
        f" {number(figures.items)} items seen, {number(figures.flagged)} flagged, "
        f"{pct(figures.responses.compliance_pct)} answered on time."
    )
    return truncate(lead + figures_line, 300)


def week_label(figures: DigestFigures) -> str:
    """``Mon 16 Nov – Sun 22 Nov 2026`` in the digest's timezone."""
    zone = ZoneInfo(figures.timezone)
    first = figures.start.astimezone(zone).date()
    last = figures.end.astimezone(zone).date() - timedelta(days=1)
    return f"{first:%a %d %b} – {last:%a %d %b %Y}"


def subject_dates(figures: DigestFigures) -> str:
    """``16 to 22 Nov 2026`` (``30 Nov to 6 Dec 2026`` across months)."""
    zone = ZoneInfo(figures.timezone)
    first = figures.start.astimezone(zone).date()
    last = figures.end.astimezone(zone).date() - timedelta(days=1)
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day} to {last.day} {last:%b %Y}"
    if first.year == last.year:
        return f"{first.day} {first:%b} to {last.day} {last:%b %Y}"
    return f"{first.day} {first:%b %Y} to {last.day} {last:%b %Y}"


def render(
    figures: DigestFigures,
    *,
    organisation: str,
    dashboard_url: str | None = None,
    images: Literal["cid", "data"] = "cid",
    case_base: str | None = None,
) -> RenderedDigest:
    """The email for ``figures``; ``images="data"`` inlines charts as data: URIs (previews).

    ``case_base``: the workplace's base URL, for links to each case that needs a decision.
    """
    charts = trend_charts(figures.trend)
    if images == "data":
        sources = {
            cid: "data:image/png;base64," + base64.b64encode(png).decode("ascii")
            for cid, png in charts.items()
        }
    else:
        sources = {cid: f"cid:{cid}" for cid in charts}
    scope_name = clean(figures.school_name or organisation)
    label = week_label(figures)
    context = {
        "f": figures,
        "organisation": clean(organisation),
        "scope_name": scope_name,
        "is_trust": figures.school_name is None,
        "week_label": label,
        "dashboard": safe_url(dashboard_url) if dashboard_url else None,
        "charts": [(cid, CHART_TITLES[cid], sources[cid]) for cid in charts],
        "latest": figures.trend[-1] if figures.trend else None,
    }
    env = _environment(figures.timezone)
    zone = ZoneInfo(figures.timezone)

    def short_when(moment: datetime) -> str:
        local = moment.astimezone(zone)
        return local.strftime(
            "%a %d %b %H:%M" if local.year == figures.end.year else "%a %d %b %Y %H:%M"
        )

    groups = decision_groups(figures, when=short_when, base=case_base)
    context["decisions"] = groups
    context["preheader"] = preheader(figures, groups)
    # ASCII around the name: the stdlib folds "Nov – Sun" into an encoded word with a stray space
    subject = f"Weekly social media digest: {scope_name}, {subject_dates(figures)}"
    return RenderedDigest(
        subject=truncate(subject, 200),
        text=env.get_template("digest.txt").render(context),
        html=env.get_template("digest.html").render(context),
        images=charts if images == "cid" else {},
    )
