"""R16 as data plus pure functions: what a post may say, who may approve it, and when it may go.

Nothing here reads files, the clock or the database: the caller passes the draft's content,
the text findings (from the classifier's rule engine), the no-publication list and "now".
Every rule is a table test (tests/rules/test_posting_rules.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import regex  # type: ignore[import-untyped]

from monitor.constants import Role

MAX_IMAGES = 4
MAX_THREAD_PARTS = 10
BLUESKY_MAX_GRAPHEMES = 300
REDDIT_MAX_TITLE = 300
REDDIT_MAX_BODY = 40_000
DEFAULT_MASTODON_MAX_CHARS = 500
DEFAULT_MAX_IMAGE_BYTES = 1_000_000  # Bluesky's blob limit for images; the smallest of the three
IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
DEFAULT_APPROVERS: frozenset[Role] = frozenset({Role.PRINCIPAL, Role.SLT})
DEFAULT_OVERRIDERS: frozenset[Role] = frozenset({Role.PRINCIPAL})  # issue 17: "a principal may"
NO_PUPILS = "no pupils"


class CheckLevel(StrEnum):
    """A blocker can never be overridden; a warning can, by an approver, with a reason."""

    BLOCK = "block"
    WARN = "warn"


@dataclass(frozen=True)
class Image:
    """One image of a draft: where it is, what it shows, and the pupils the drafter declared."""

    path: str
    alt: str
    pupils: tuple[str, ...]  # empty: "no pupils" declared; None is not allowed (see checks)
    declared: bool  # False: the drafter said nothing about pupils
    media_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class DraftContent:
    """Exactly what will be published: the hash of this is what an approval is bound to."""

    parts: tuple[str, ...]  # the thread: the first post and its replies
    images: tuple[Image, ...] = ()  # attached to the first post
    links: tuple[str, ...] = ()
    title: str | None = None  # Reddit only
    targets: tuple[str, ...] = ()  # account keys
    publish_at: datetime | None = None  # None: as soon as approved

    def to_json(self) -> dict[str, Any]:
        """A plain dict for storage (and the canonical form that is hashed)."""
        return {
            "parts": list(self.parts),
            "images": [
                {
                    "path": i.path,
                    "alt": i.alt,
                    "pupils": list(i.pupils),
                    "declared": i.declared,
                    "media_type": i.media_type,
                    "size": i.size,
                    "sha256": i.sha256,
                }
                for i in self.images
            ],
            "links": list(self.links),
            "title": self.title,
            "targets": sorted(self.targets),
            "publish_at": self.publish_at.astimezone(UTC).isoformat() if self.publish_at else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DraftContent:
        """Read back what ``to_json`` wrote."""
        at = data.get("publish_at")
        return cls(
            parts=tuple(str(p) for p in data["parts"]),
            images=tuple(
                Image(
                    path=str(i["path"]),
                    alt=str(i["alt"]),
                    pupils=tuple(str(p) for p in i["pupils"]),
                    declared=bool(i["declared"]),
                    media_type=str(i["media_type"]),
                    size=int(i["size"]),
                    sha256=str(i["sha256"]),
                )
                for i in data.get("images", [])
            ),
            links=tuple(str(link) for link in data.get("links", [])),
            title=data.get("title"),
            targets=tuple(str(k) for k in data.get("targets", [])),
            publish_at=datetime.fromisoformat(at) if at else None,
        )

    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON: any change to text, images, targets or time changes it."""
        canonical = json.dumps(self.to_json(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def full_text(self, part: int) -> str:
        """Part ``part`` as published (links follow the first part)."""
        text = self.parts[part]
        if part == 0 and self.links:
            text = text.rstrip() + "\n" + "\n".join(self.links)
        return text


@dataclass(frozen=True)
class Finding:
    """One check that fired: which check, how bad, and exactly what and where."""

    check: str
    level: CheckLevel
    where: str  # e.g. "part 1", "image 2", "target oak-bsky", "publish time"
    message: str

    def to_json(self) -> dict[str, str]:
        """A plain dict for storage and messages."""
        return {
            "check": self.check,
            "level": self.level.value,
            "where": self.where,
            "message": self.message,
        }


@dataclass(frozen=True)
class TextHit:
    """What the classifier's rule engine (or model) found in one part, already categorised."""

    part: int
    rule_id: str
    category: str  # personal_data, abusive, threat, ...
    matched: str
    reason: str
    from_model: bool = False  # the toxicity model's score, not a listed phrase


@dataclass(frozen=True)
class Target:
    """One account a draft goes to, and its platform's limits."""

    key: str
    platform: str  # bluesky | mastodon | reddit
    mastodon_max_chars: int = DEFAULT_MASTODON_MAX_CHARS


# ------------------------------------------------------------- checks

PUPIL_NAME_RULE = "PD-PUPIL-NAME"
TEXT_BLOCKING_CATEGORIES = frozenset({"threat"})
TEXT_WARNING_CATEGORIES = frozenset({"abusive", "personal_data", "safeguarding"})


def graphemes(text: str) -> int:
    """User-perceived characters (Bluesky counts these)."""
    return len(regex.findall(r"\X", text))


def text_findings(hits: Iterable[TextHit]) -> list[Finding]:
    """Classifier hits as findings: a protected pupil's full name or a threatening phrase
    blocks; personal data and abusive wording warn (an approver may override with a reason).
    The toxicity model's hits (abusive or threatening wording by score) warn: a score is an
    estimate the principal may overrule, a listed phrase is not."""
    out: list[Finding] = []
    for hit in hits:
        if hit.rule_id == PUPIL_NAME_RULE:
            level, check = CheckLevel.BLOCK, "protected_pupil"
        elif hit.from_model and hit.category in TEXT_BLOCKING_CATEGORIES | TEXT_WARNING_CATEGORIES:
            level, check = CheckLevel.WARN, hit.category
        elif hit.category in TEXT_BLOCKING_CATEGORIES:
            level, check = CheckLevel.BLOCK, hit.category
        elif hit.category in TEXT_WARNING_CATEGORIES:
            level, check = CheckLevel.WARN, hit.category
        else:
            continue  # questions, media enquiries and the like are fine in a school's own post
        what = f"{hit.reason}: {hit.matched!r}" if hit.matched else f"{hit.reason} (model)"
        out.append(Finding(check, level, f"part {hit.part + 1}", what))
    return out


def _name_key(name: str) -> str:
    return " ".join(name.casefold().split())


def image_findings(images: Sequence[Image], no_publication: Iterable[str]) -> list[Finding]:
    """Every image needs alt text and a declaration; no declared pupil may be on the list."""
    listed = {_name_key(n) for n in no_publication if n.strip()}
    out: list[Finding] = []
    if len(images) > MAX_IMAGES:
        out.append(
            Finding("images", CheckLevel.BLOCK, "images", f"at most {MAX_IMAGES} images a post")
        )
    for number, image in enumerate(images, 1):
        where = f"image {number}"
        if not image.alt.strip():
            out.append(Finding("alt_text", CheckLevel.BLOCK, where, "alt text is required"))
        if not image.declared:
            out.append(
                Finding(
                    "pupils_declared",
                    CheckLevel.BLOCK,
                    where,
                    f"declare the pupils shown (names, or {NO_PUPILS!r})",
                )
            )
        for pupil in image.pupils:
            if _name_key(pupil) in listed:
                out.append(
                    Finding(
                        "no_publication",
                        CheckLevel.BLOCK,
                        where,
                        "shows a pupil on the school's no-publication list",
                    )
                )
    return out


def file_findings(
    images: Sequence[Image], max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
) -> list[Finding]:
    """Bad files: too large or not an image type every platform takes."""
    out: list[Finding] = []
    for number, image in enumerate(images, 1):
        where = f"image {number}"
        if image.media_type not in IMAGE_TYPES:
            out.append(
                Finding(
                    "image_type",
                    CheckLevel.BLOCK,
                    where,
                    f"{image.media_type} is not PNG, JPEG, GIF or WebP",
                )
            )
        if image.size > max_bytes:
            out.append(
                Finding(
                    "image_size",
                    CheckLevel.BLOCK,
                    where,
                    f"{image.size} bytes is over the limit of {max_bytes}",
                )
            )
    return out


def limit_findings(content: DraftContent, targets: Sequence[Target]) -> list[Finding]:
    """Each target's own limits: Bluesky 300 graphemes, the Mastodon instance's characters,
    a Reddit title (required, 300) and body."""
    out: list[Finding] = []
    if not content.parts or not any(p.strip() for p in content.parts):
        out.append(Finding("empty", CheckLevel.BLOCK, "part 1", "the post has no text"))
    if len(content.parts) > MAX_THREAD_PARTS:
        out.append(
            Finding("thread", CheckLevel.BLOCK, "parts", f"at most {MAX_THREAD_PARTS} parts")
        )
    if not targets:
        out.append(Finding("targets", CheckLevel.BLOCK, "targets", "choose at least one account"))
    for target in targets:
        where = f"target {target.key}"
        for index in range(len(content.parts)):
            text = content.full_text(index)
            if target.platform == "bluesky" and graphemes(text) > BLUESKY_MAX_GRAPHEMES:
                out.append(
                    Finding(
                        "length",
                        CheckLevel.BLOCK,
                        f"{where}, part {index + 1}",
                        f"{graphemes(text)} characters; Bluesky allows {BLUESKY_MAX_GRAPHEMES}",
                    )
                )
            if target.platform == "mastodon" and len(text) > target.mastodon_max_chars:
                out.append(
                    Finding(
                        "length",
                        CheckLevel.BLOCK,
                        f"{where}, part {index + 1}",
                        f"{len(text)} characters; this instance allows {target.mastodon_max_chars}",
                    )
                )
        if target.platform == "reddit":
            out += _reddit_findings(content, where)
    return out


def _reddit_findings(content: DraftContent, where: str) -> list[Finding]:
    """A Reddit target's limits: no images, a title (required, 300) and the body."""
    out: list[Finding] = []
    title = (content.title or "").strip()
    body = "\n\n".join(content.full_text(i) for i in range(len(content.parts)))
    if content.images:
        out.append(Finding("images", CheckLevel.BLOCK, where, "images cannot be posted to Reddit"))
    if not title:
        out.append(Finding("title", CheckLevel.BLOCK, where, "Reddit needs a title"))
    elif len(title) > REDDIT_MAX_TITLE:
        out.append(
            Finding(
                "length",
                CheckLevel.BLOCK,
                where,
                f"title of {len(title)} characters; Reddit allows {REDDIT_MAX_TITLE}",
            )
        )
    if len(body) > REDDIT_MAX_BODY:
        out.append(
            Finding(
                "length",
                CheckLevel.BLOCK,
                where,
                f"body of {len(body)} characters; Reddit allows {REDDIT_MAX_BODY}",
            )
        )
    return out


def time_findings(publish_at: datetime | None, now: datetime) -> list[Finding]:
    """A time already past cannot be scheduled (None: as soon as approved)."""
    if publish_at is not None and publish_at <= now:
        return [
            Finding(
                "publish_time",
                CheckLevel.BLOCK,
                "publish time",
                f"{publish_at.isoformat()} is in the past",
            )
        ]
    return []


class LocalTimeError(ValueError):
    """A wall-clock time that does not exist (a clock change's gap) or cannot be read."""


def local_to_utc(text: str, timezone: str = "Europe/London") -> datetime:
    """``"2026-12-10 09:00"`` in ``timezone`` as aware UTC; a time in the spring-forward gap is
    an error; in the autumn overlap the first (summer-time) occurrence is meant."""
    try:
        naive = datetime.fromisoformat(text.strip().replace("T", " "))
    except ValueError as exc:
        raise LocalTimeError(f"not a date and time: {text!r} (use YYYY-MM-DD HH:MM)") from exc
    if naive.tzinfo is not None:
        raise LocalTimeError(f"give the local time without an offset: {text!r}")
    zone = ZoneInfo(timezone)
    local = naive.replace(tzinfo=zone, fold=0)
    back = local.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if back != naive:
        raise LocalTimeError(
            f"{naive:%Y-%m-%d %H:%M} does not exist in {timezone}: the clocks go forward then"
        )
    return local.astimezone(UTC)


# ------------------------------------------------------------- approval


@dataclass(frozen=True)
class ApprovalPolicy:
    """Who may approve a school's posts, and whether a drafter may approve their own."""

    approvers: frozenset[Role] = DEFAULT_APPROVERS
    self_approval: bool = False
    overriders: frozenset[Role] = DEFAULT_OVERRIDERS  # who may override a warning


@dataclass(frozen=True)
class Approver:
    """The person deciding, as the rules see them."""

    staff_id: str
    roles: frozenset[Role]
    schools: frozenset[str] = field(default_factory=frozenset)  # empty: trust-wide


def may_approve(
    policy: ApprovalPolicy, who: Approver, *, school: str, drafted_by: str
) -> str | None:
    """None when ``who`` may approve; else the reason they may not."""
    if who.schools and school not in who.schools:
        return f"{who.staff_id} does not work for {school}"
    if not who.roles & policy.approvers:
        wanted = ", ".join(sorted(r.value for r in policy.approvers))
        return f"only {wanted} may approve posts for {school}"
    if who.staff_id == drafted_by and not policy.self_approval:
        return "nobody approves their own draft at this school"
    return None


def stop_refusal(
    policy: ApprovalPolicy, who: Approver, *, school: str, drafted_by: str, published: bool
) -> str | None:
    """None when ``who`` may stop a school's post; else why not.

    Cancelling (before it is out) or withdrawing (once it is out) is for the school's approvers;
    the drafter may also cancel their own draft before it is published. A withdrawal speaks
    for the school again, so it is the approvers' alone.
    """
    if who.schools and school not in who.schools:
        return f"{who.staff_id} does not work for {school}"
    if not published and who.staff_id == drafted_by:
        return None
    if not who.roles & policy.approvers:
        wanted = ", ".join(sorted(r.value for r in policy.approvers))
        if published:
            return f"only {wanted} may withdraw posts for {school}"
        return f"only {wanted} or the drafter may cancel posts for {school}"
    return None


def approval_holds(approved_hash: str | None, current_hash: str) -> bool:
    """An approval covers exactly the content it was given for; any change voids it."""
    return approved_hash is not None and approved_hash == current_hash


def blocking(findings: Iterable[Finding], overridden: Iterable[str] = ()) -> list[Finding]:
    """What still stops publication: every blocker, and every warning not overridden.

    ``overridden`` holds the ``check@where`` keys an approver overrode with a reason.
    """
    waived = set(overridden)
    return [f for f in findings if f.level is CheckLevel.BLOCK or finding_key(f) not in waived]


def finding_key(finding: Finding) -> str:
    """The key an override names."""
    return f"{finding.check}@{finding.where}"


def may_override(finding: Finding) -> bool:
    """Warnings may be overridden with a reason; blockers (no-publication hits among them) never."""
    return finding.level is CheckLevel.WARN


def override_refusal(policy: ApprovalPolicy, who: Approver) -> str | None:
    """None when ``who`` may override a warning (with a reason); else why not."""
    if who.roles & policy.overriders:
        return None
    wanted = ", ".join(sorted(r.value for r in policy.overriders))
    return f"only {wanted} may override a check's warning"


def reminder_due(
    requested_at: datetime, reminded_at: datetime | None, now: datetime, after: timedelta
) -> bool:
    """A draft waiting for approval longer than ``after`` is reminded, then again each ``after``."""
    last = reminded_at or requested_at
    return now - last >= after
