"""R16 table tests: every posting check FIRES on what it is for and SPARES what is fine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.constants import Role
from monitor.rules.posting import (
    ApprovalPolicy,
    Approver,
    CheckLevel,
    DraftContent,
    Finding,
    Image,
    LocalTimeError,
    Target,
    TextHit,
    approval_holds,
    blocking,
    file_findings,
    finding_key,
    graphemes,
    image_findings,
    limit_findings,
    local_to_utc,
    may_approve,
    may_override,
    reminder_due,
    stop_refusal,
    text_findings,
    time_findings,
)

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
NO_PUBLICATION = ["Harry Lister", "Amara Osei"]
BSKY = Target("oak-bsky", "bluesky")
MASTO = Target("oak-masto", "mastodon", mastodon_max_chars=500)
REDDIT = Target("oak-reddit", "reddit")


def image(
    alt: str = "Year 5 at the science fair",
    pupils: tuple[str, ...] = (),
    declared: bool = True,
    media_type: str = "image/png",
    size: int = 1000,
) -> Image:
    return Image("/tmp/a.png", alt, pupils, declared, media_type, size, "0" * 64)


def checks(findings: list[Finding]) -> list[tuple[str, CheckLevel, str]]:
    return [(f.check, f.level, f.where) for f in findings]


# --- text findings (the classifier's hits, as posting checks) ---------------------------------

TEXT_CASES = [
    # FIRES
    (
        TextHit(0, "PD-PUPIL-NAME", "personal_data", "Harry Lister", "full name"),
        "protected_pupil",
        CheckLevel.BLOCK,
    ),
    (TextHit(1, "TH-KILL", "threat", "kill", "a threat"), "threat", CheckLevel.BLOCK),
    (
        TextHit(0, "PD-PHONE", "personal_data", "07700 900123", "a phone"),
        "personal_data",
        CheckLevel.WARN,
    ),
    (TextHit(0, "AB-IDIOT", "abusive", "idiots", "abusive"), "abusive", CheckLevel.WARN),
    # SPARES: a question or a media enquiry in the school's own post is not a problem
    (TextHit(0, "Q-QUESTION", "needs_response", "?", "a question"), None, None),
    (TextHit(0, "ME-PRESS", "media_enquiry", "press", "press"), None, None),
]


@pytest.mark.parametrize(("hit", "check", "level"), TEXT_CASES)
def test_text_hits(hit: TextHit, check: str | None, level: CheckLevel | None) -> None:
    found = text_findings([hit])
    if check is None:
        assert found == []
    else:
        assert [(f.check, f.level) for f in found] == [(check, level)]
        assert found[0].where == f"part {hit.part + 1}"
        assert hit.matched in found[0].message


# --- images: alt text, declarations and the no-publication list -------------------------------

IMAGE_CASES = [
    # SPARES
    ("no pupils", [image()], []),
    ("pupils not on the list", [image(pupils=("Harry Potter", "Amara"))], []),
    ("case and spacing of a listed first name alone", [image(pupils=("harry",))], []),
    # FIRES
    (
        "a listed pupil",
        [image(pupils=("Harry Lister",))],
        [("no_publication", CheckLevel.BLOCK, "image 1")],
    ),
    (
        "listed, odd case and spaces",
        [image(), image(pupils=("  amara   OSEI ",))],
        [("no_publication", CheckLevel.BLOCK, "image 2")],
    ),
    ("missing alt text", [image(alt="  ")], [("alt_text", CheckLevel.BLOCK, "image 1")]),
    (
        "nothing declared",
        [image(declared=False)],
        [("pupils_declared", CheckLevel.BLOCK, "image 1")],
    ),
    ("five images", [image()] * 5, [("images", CheckLevel.BLOCK, "images")]),
]


@pytest.mark.parametrize(
    ("label", "images", "expected"), IMAGE_CASES, ids=[c[0] for c in IMAGE_CASES]
)
def test_images(
    label: str, images: list[Image], expected: list[tuple[str, CheckLevel, str]]
) -> None:
    assert checks(image_findings(images, NO_PUBLICATION)) == expected


FILE_CASES = [
    ("png under the limit", image(), []),
    ("webp", image(media_type="image/webp"), []),
    ("too large", image(size=1_000_001), [("image_size", CheckLevel.BLOCK, "image 1")]),
    ("a PDF", image(media_type="application/pdf"), [("image_type", CheckLevel.BLOCK, "image 1")]),
]


@pytest.mark.parametrize(("label", "img", "expected"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_files(label: str, img: Image, expected: list[tuple[str, CheckLevel, str]]) -> None:
    assert checks(file_findings([img], 1_000_000)) == expected


# --- per-platform limits -----------------------------------------------------------------------

FAMILY = "👨‍👩‍👧‍👦"  # one grapheme, seven code points

LIMIT_CASES = [
    ("300 graphemes on Bluesky", DraftContent(("a" * 300,), targets=("oak-bsky",)), [BSKY], []),
    (
        "300 emoji families on Bluesky",
        DraftContent((FAMILY * 300,), targets=("oak-bsky",)),
        [BSKY],
        [],
    ),
    (
        "301 on Bluesky",
        DraftContent(
            ("a" * 301,),
        ),
        [BSKY],
        [("length", CheckLevel.BLOCK, "target oak-bsky, part 1")],
    ),
    (
        "links count",
        DraftContent(("a" * 290,), links=("https://oak.example/x",)),
        [BSKY],
        [("length", CheckLevel.BLOCK, "target oak-bsky, part 1")],
    ),
    (
        "second part over",
        DraftContent(("ok", "b" * 301)),
        [BSKY],
        [("length", CheckLevel.BLOCK, "target oak-bsky, part 2")],
    ),
    ("500 on Mastodon", DraftContent(("a" * 500,)), [MASTO], []),
    (
        "501 on Mastodon",
        DraftContent(("a" * 501,)),
        [MASTO],
        [("length", CheckLevel.BLOCK, "target oak-masto, part 1")],
    ),
    ("instance limit 1000", DraftContent(("a" * 900,)), [Target("m", "mastodon", 1000)], []),
    ("Reddit with a title", DraftContent(("body",), title="Sports day"), [REDDIT], []),
    (
        "Reddit without a title",
        DraftContent(("body",)),
        [REDDIT],
        [("title", CheckLevel.BLOCK, "target oak-reddit")],
    ),
    (
        "Reddit title too long",
        DraftContent(("body",), title="t" * 301),
        [REDDIT],
        [("length", CheckLevel.BLOCK, "target oak-reddit")],
    ),
    (
        "one text, each platform its limit",
        DraftContent(("a" * 400,), title="T"),
        [BSKY, MASTO, REDDIT],
        [("length", CheckLevel.BLOCK, "target oak-bsky, part 1")],
    ),
    (
        "Reddit with an image",
        DraftContent(("body",), images=(image(),), title="T"),
        [REDDIT],
        [("images", CheckLevel.BLOCK, "target oak-reddit")],
    ),
    ("no text", DraftContent(("  ",)), [MASTO], [("empty", CheckLevel.BLOCK, "part 1")]),
    ("no targets", DraftContent(("hi",)), [], [("targets", CheckLevel.BLOCK, "targets")]),
]


@pytest.mark.parametrize(
    ("label", "content", "targets", "expected"), LIMIT_CASES, ids=[c[0] for c in LIMIT_CASES]
)
def test_limits(
    label: str,
    content: DraftContent,
    targets: list[Target],
    expected: list[tuple[str, CheckLevel, str]],
) -> None:
    assert checks(limit_findings(content, targets)) == expected


def test_graphemes_count_what_people_see() -> None:
    assert graphemes(FAMILY) == 1
    assert graphemes("e\u0301") == 1
    assert graphemes("abc") == 3


# --- times: Europe/London input, the past, and the clock changes -------------------------------

TIME_CASES = [
    ("winter", "2026-12-10 09:00", datetime(2026, 12, 10, 9, 0, tzinfo=UTC)),
    ("summer", "2027-06-10 09:00", datetime(2027, 6, 10, 8, 0, tzinfo=UTC)),
    ("the hour before the gap", "2027-03-28 00:59", datetime(2027, 3, 28, 0, 59, tzinfo=UTC)),
    ("just after the gap", "2027-03-28 02:00", datetime(2027, 3, 28, 1, 0, tzinfo=UTC)),
    (
        "autumn overlap: the first 01:30",
        "2027-10-31 01:30",
        datetime(2027, 10, 31, 0, 30, tzinfo=UTC),
    ),
]


@pytest.mark.parametrize(("label", "text", "expected"), TIME_CASES, ids=[c[0] for c in TIME_CASES])
def test_local_times(label: str, text: str, expected: datetime) -> None:
    assert local_to_utc(text) == expected


@pytest.mark.parametrize("text", ["2027-03-28 01:00", "2027-03-28 01:30", "2027-03-28 01:59"])
def test_a_time_in_the_spring_gap_is_refused(text: str) -> None:
    with pytest.raises(LocalTimeError, match="does not exist"):
        local_to_utc(text)


@pytest.mark.parametrize("text", ["tomorrow", "2027-02-30 09:00", "2027-01-10T09:00+01:00"])
def test_unreadable_times_are_refused(text: str) -> None:
    with pytest.raises(LocalTimeError):
        local_to_utc(text)


@pytest.mark.parametrize(
    ("at", "fires"),
    [
        (None, False),
        (NOW + timedelta(minutes=1), False),
        (NOW, True),
        (NOW - timedelta(days=1), True),
    ],
)
def test_time_in_the_past(at: datetime | None, fires: bool) -> None:
    assert bool(time_findings(at, NOW)) is fires


# --- approval ----------------------------------------------------------------------------------

HEAD = Approver("head", frozenset({Role.PRINCIPAL}), frozenset({"oak"}))
DEPUTY = Approver("deputy", frozenset({Role.SLT}), frozenset({"oak"}))
COMMS = Approver("comms", frozenset({Role.COMMS}), frozenset({"oak"}))
OTHER_HEAD = Approver("elm-head", frozenset({Role.PRINCIPAL}), frozenset({"elm"}))
CEO = Approver("ceo", frozenset({Role.PRINCIPAL}))  # trust-wide
DEFAULT = ApprovalPolicy()
PRINCIPAL_ONLY = ApprovalPolicy(frozenset({Role.PRINCIPAL}))
SELF_OK = ApprovalPolicy(self_approval=True)

APPROVAL_CASES = [
    # SPARES (may approve)
    ("principal approves comms' draft", DEFAULT, HEAD, "comms", None),
    ("SLT approves", DEFAULT, DEPUTY, "comms", None),
    ("trust-wide principal (CEO)", DEFAULT, CEO, "comms", None),
    ("own draft where policy allows", SELF_OK, HEAD, "head", None),
    # FIRES (refused)
    ("comms may not approve", DEFAULT, COMMS, "head", "only principal, slt may approve"),
    ("own draft", DEFAULT, HEAD, "head", "nobody approves their own draft"),
    ("another school's principal", DEFAULT, OTHER_HEAD, "comms", "does not work for oak"),
    (
        "SLT where only the principal may",
        PRINCIPAL_ONLY,
        DEPUTY,
        "comms",
        "only principal may approve",
    ),
]


@pytest.mark.parametrize(
    ("label", "policy", "who", "drafted_by", "refusal"),
    APPROVAL_CASES,
    ids=[c[0] for c in APPROVAL_CASES],
)
def test_who_may_approve(
    label: str, policy: ApprovalPolicy, who: Approver, drafted_by: str, refusal: str | None
) -> None:
    got = may_approve(policy, who, school="oak", drafted_by=drafted_by)
    if refusal is None:
        assert got is None
    else:
        assert got is not None and refusal in got


STOP_CASES = [
    # SPARES (may stop)
    ("principal cancels comms' draft", DEFAULT, HEAD, "comms", False, None),
    ("SLT withdraws a published post", DEFAULT, DEPUTY, "comms", True, None),
    ("the drafter cancels their own draft", DEFAULT, COMMS, "comms", False, None),
    ("a principal cancels their own (no self-approval needed)", DEFAULT, HEAD, "head", False, None),
    ("a principal withdraws their own published post", DEFAULT, HEAD, "head", True, None),
    ("trust-wide principal (CEO) withdraws", DEFAULT, CEO, "comms", True, None),
    # FIRES (refused)
    ("comms cancels another's draft", DEFAULT, COMMS, "head", False, "or the drafter may cancel"),
    ("the drafter withdraws", DEFAULT, COMMS, "comms", True, "only principal, slt may withdraw"),
    ("another school's principal", DEFAULT, OTHER_HEAD, "comms", False, "does not work for oak"),
    ("SLT where only the principal may", PRINCIPAL_ONLY, DEPUTY, "comms", True, "only principal"),
]


@pytest.mark.parametrize(
    ("label", "policy", "who", "drafted_by", "published", "refusal"),
    STOP_CASES,
    ids=[c[0] for c in STOP_CASES],
)
def test_who_may_cancel_or_withdraw(
    label: str,
    policy: ApprovalPolicy,
    who: Approver,
    drafted_by: str,
    published: bool,
    refusal: str | None,
) -> None:
    got = stop_refusal(policy, who, school="oak", drafted_by=drafted_by, published=published)
    if refusal is None:
        assert got is None, label
    else:
        assert got is not None and refusal in got, label


def test_any_change_voids_the_approval() -> None:
    base = DraftContent(("Sports day is on Friday!",), targets=("oak-bsky",))
    approved = base.content_hash()
    assert approval_holds(
        approved, DraftContent(("Sports day is on Friday!",), targets=("oak-bsky",)).content_hash()
    )
    changes = [
        DraftContent(("Sports day is on Friday.",), targets=("oak-bsky",)),
        DraftContent(("Sports day is on Friday!",), targets=("oak-bsky", "oak-masto")),
        DraftContent(("Sports day is on Friday!",), targets=("oak-bsky",), publish_at=NOW),
        DraftContent(("Sports day is on Friday!",), images=(image(),), targets=("oak-bsky",)),
        DraftContent(
            ("Sports day is on Friday!",), images=(image(alt="other"),), targets=("oak-bsky",)
        ),
        DraftContent(("Sports day is on Friday!", "More soon"), targets=("oak-bsky",)),
    ]
    for changed in changes:
        assert not approval_holds(approved, changed.content_hash())
    assert not approval_holds(None, approved)


def test_content_survives_storage() -> None:
    content = DraftContent(
        ("a", "b"), (image(pupils=("Amara",)),), ("https://x",), "T", ("k",), NOW
    )
    assert DraftContent.from_json(content.to_json()) == content
    assert DraftContent.from_json(content.to_json()).content_hash() == content.content_hash()


def test_overrides_waive_warnings_never_blockers() -> None:
    warn = Finding("personal_data", CheckLevel.WARN, "part 1", "a phone")
    block = Finding("no_publication", CheckLevel.BLOCK, "image 1", "listed")
    assert may_override(warn) and not may_override(block)
    assert blocking([warn, block]) == [warn, block]
    assert blocking([warn, block], [finding_key(warn), finding_key(block)]) == [block]
    assert blocking([warn], ["personal_data@part 2"]) == [warn]  # another place is not waived


@pytest.mark.parametrize(
    ("waited", "reminded", "due"),
    [
        (timedelta(hours=3), None, False),
        (timedelta(hours=4), None, True),
        (timedelta(hours=9), timedelta(hours=2), False),
        (timedelta(hours=9), timedelta(hours=4), True),
    ],
)
def test_reminders(waited: timedelta, reminded: timedelta | None, due: bool) -> None:
    reminded_at = NOW - reminded if reminded else None
    assert reminder_due(NOW - waited, reminded_at, NOW, timedelta(hours=4)) is due
