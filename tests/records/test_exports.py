"""Subject-access and evidence exports: contents, hashes and safe display of hostile text."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from monitor import audit
from monitor.constants import CaseState, Category
from monitor.evidence import canonical
from monitor.exports import (
    ExportRefused,
    UnknownCases,
    UnknownRequester,
    export_evidence,
    export_subject,
    normalise_handle,
    shown,
    to_csv,
)
from monitor.storage import tables as t
from monitor.storage.db import transaction
from tests.records.seed_records import (
    add_action,
    add_case,
    add_item,
    capture,
    example_directory,
    sync_example,
)

SUMMER = datetime(2026, 7, 1, 11, 0, tzinfo=UTC)  # 12:00 BST
HUGE = "x" * 200_000 + "<b>end</b>"
HOSTILE = {
    "script": "<script>alert('pwned')</script> & </div></td></table>",
    "img": '<img src=x onerror="alert(1)"><a href="javascript:alert(2)">click</a>',
    "slack": "<!channel> <@U0123ABC|head> *bold* <https://evil.example|your bank> `x`",
    "bidi": "harmless \u202egnp.exe\u202c and\u200b zero\u2060width \ufeff bom \u0007 bell",
    "zalgo": "Z\u0351\u0352\u0353\u0354\u0355\u0356\u0357\u0358\u0359A\u035a\u035b\u035c LGO",
    "emoji": "family 👨‍👩‍👧 flag 🇬🇧 and Ⅻ ﬁ ｗｉｄｅ",
    "formula": '=HYPERLINK("https://evil.example","click")',
    "huge": HUGE,
}
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "h4", "p", "table",
    "tr", "th", "td", "div", "span", "code", "details", "summary", "strong", "a",
}  # fmt: skip
ALLOWED_ATTRS = {
    "lang",
    "charset",
    "http-equiv",
    "content",
    "name",
    "class",
    "title",
    "href",
    "rel",
}


class TagCollector(HTMLParser):
    """Every start tag and attribute a browser would see."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(markup: str) -> TagCollector:
    collector = TagCollector()
    collector.feed(markup)
    collector.close()
    return collector


def read_csv(data: bytes) -> list[dict[str, str]]:
    csv.field_size_limit(1_000_000)  # the huge comment is one cell
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("@Troll", "troll"),
        ("troll", "troll"),
        ("  @@TROLL ", "troll"),
        ("@Alice@Mastodon.Social", "alice@mastodon.social"),
        ("Straße", "strasse"),
        ("ÅSA", "åsa"),
    ],
)
def test_handles_compare_without_case_or_leading_at(given: str, expected: str) -> None:
    assert normalise_handle(given) == expected


def test_shown_escapes_and_marks_hidden_characters() -> None:
    assert str(shown("<b>&'\"")) == "&lt;b&gt;&amp;&#39;&#34;"
    marked = str(shown("a\u202eb\u200bc\nd\te"))
    assert "\u202e" not in marked and "U+202E" in marked and "U+200B" in marked
    assert "\n" in marked and "\t" in marked  # ordinary layout characters stay
    assert str(shown(None)) == ""


def test_csv_cells_that_look_like_formulas_are_neutralised() -> None:
    rows = read_csv(
        to_csv([{"a": "=1+1", "b": "@SUM(A1)", "c": "-2", "d": "ok", "e": True}], "abcde")
    )
    assert rows == [{"a": "'=1+1", "b": "'@SUM(A1)", "c": "'-2", "d": "ok", "e": "yes"}]


def by(session: Session, staff: str, via: str = "cli:test") -> dict[str, Any]:
    """The export arguments for a request by the example's member of staff ``staff``."""
    return {"staff": staff, "directory": example_directory(session), "via": via}


# ------------------------------------------------------------- evidence export


def seed_hostile_case(session: Session, now: datetime) -> tuple[int, int, dict[int, str]]:
    """A case holding one evidence record per hostile text; returns (case, other case, texts)."""
    account = sync_example(session, now - timedelta(days=30))
    first = add_item(session, account, seen_at=SUMMER, text=HOSTILE["script"], flagged=True)
    case = add_case(session, opened_at=SUMMER, item=first, title="<script>alert('title')</script>")
    texts: dict[int, str] = {}
    for n, text in enumerate(HOSTILE.values()):
        item = first if n == 0 else add_item(
            session, account, seen_at=SUMMER, text=text, flagged=True,
            handle="</td><script>h</script>", url="javascript:alert(3)" if n == 1 else None,
        )  # fmt: skip
        record = capture(session, item, case, now if n % 2 else SUMMER)
        texts[record.id] = text
    other_item = add_item(session, account, seen_at=now, text="other case", flagged=True)
    other = add_case(session, opened_at=now, item=other_item, state=CaseState.CLOSED)
    capture(session, other_item, other, now)
    return case.id, other.id, texts


def test_evidence_export_is_safe_complete_and_verifiable(
    sessions: sessionmaker[Session], now: datetime, tmp_path: Path
) -> None:
    with transaction(sessions) as session:
        case_id, other_id, texts = seed_hostile_case(session, now)
    with transaction(sessions) as session:
        result = export_evidence(
            session, [case_id, other_id], tmp_path, now=now, **by(session, "bpatel", "cli:dsl")
        )
    folder = result.path
    assert folder.parent == tmp_path and folder.is_dir()
    assert sorted(p.name for p in folder.iterdir()) == list(result.files) == [
        "case_history.csv", "evidence.csv", "evidence.json", "manifest.json", "report.html",
    ]  # fmt: skip
    assert result.counts["evidence"] == len(texts) + 1 and result.counts["not_intact"] == 0

    # -- HTML: only our own markup; every hostile text present, escaped
    report = (folder / "report.html").read_text(encoding="utf-8")
    parsed = parse_html(report)
    assert {tag for tag, _ in parsed.tags} <= ALLOWED_TAGS
    for tag, attrs in parsed.tags:
        assert {name for name, _ in attrs} <= ALLOWED_ATTRS, (tag, attrs)
        if tag == "a":
            assert dict(attrs)["href"].startswith("https://")  # type: ignore[union-attr]
    assert "<script" not in report.lower() and 'javascript:alert(3)"' not in report
    assert "\u202e" not in report and "\u200b" not in report and "U+202E" in report
    visible = "".join(parsed.text)
    for text in texts.values():
        assert str(shown(text)) in report  # the whole text, HUGE included, never truncated
    assert "<script>alert('pwned')</script>" in visible  # shown as text, not run
    assert "<script>alert('title')</script>" in visible
    assert "hash chain verified" in report and "Europe/London" in report
    assert "2026-07-01 12:00:00 BST" in report and "2026-07-01 11:00:00 UTC" in report
    assert "2026-11-23 09:30:00 GMT" in report

    # -- CSV: one row per record, hash and intact columns, formulas neutralised
    rows = read_csv((folder / "evidence.csv").read_bytes())
    with sessions() as session:
        stored = {e.id: e for e in session.scalars(select(t.Evidence))}
    assert {int(r["evidence_id"]) for r in rows} == set(stored)
    for row in rows:
        record = stored[int(row["evidence_id"])]
        assert row["sha256"] == record.sha256 and row["intact"] == "yes"
        if int(row["evidence_id"]) in texts:
            original = texts[int(row["evidence_id"])]
            expected = "'" + original if original.startswith("=") else original
            assert row["text"] == expected
    summer_row = next(r for r in rows if r["captured_at_utc"].startswith("2026-07-01"))
    assert summer_row["captured_at_london"] == "2026-07-01 12:00:00 BST"

    # -- JSON: exact snapshots whose SHA-256 anyone can recompute
    document = json.loads((folder / "evidence.json").read_text(encoding="utf-8"))
    assert [c["case_id"] for c in document["cases"]] == sorted([case_id, other_id])
    for case in document["cases"]:
        for ev in case["evidence"]:
            assert hashlib.sha256(canonical(ev["snapshot"])).hexdigest() == ev["sha256"]
            if ev["evidence_id"] in texts:
                assert ev["snapshot"]["text"] == texts[ev["evidence_id"]]
        assert case["history"][0]["action"] == "case.opened"
    assert document["audit_chain"]["intact"] is True
    assert document["audit_chain"]["breaks"] == []

    # -- history CSV and the manifest
    history = read_csv((folder / "case_history.csv").read_bytes())
    assert {"case.opened", "case.state"} <= {h["action"] for h in history}
    manifest = json.loads((folder / "manifest.json").read_text())
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest

    # -- the export itself is on each case's record, and the chain still verifies
    with sessions() as session:
        exported = session.scalars(
            select(t.AuditEvent).where(t.AuditEvent.action == "case.evidence_exported")
        ).all()
        assert sorted(e.case_id for e in exported if e.case_id) == sorted([case_id, other_id])
        assert exported[0].details["files"] == manifest["files"]
        # who: the member of staff, and the OS user who ran the command
        assert {(e.actor, e.details["os_user"]) for e in exported} == {("bpatel", "cli:dsl")}
        assert audit.verify_chain(session)[1] == []
    assert (document["generated_by"], document["generated_via"]) == ("bpatel", "cli:dsl")
    assert "Bilal Patel (bpatel; cli:dsl)" in report


def test_altered_evidence_is_marked_not_intact(
    sessions: sessionmaker[Session], now: datetime, tmp_path: Path
) -> None:
    with transaction(sessions) as session:
        account = sync_example(session, now)
        item = add_item(session, account, seen_at=now, text="you will regret this", flagged=True)
        case = add_case(session, opened_at=now, item=item)
        record = capture(session, item, case, now)
        case_id, record_id = case.id, record.id
        snapshot = dict(record.snapshot, text="a nice comment")
        session.execute(
            update(t.Evidence).where(t.Evidence.id == record_id).values(snapshot=snapshot)
        )
    with transaction(sessions) as session:
        result = export_evidence(
            session, [case_id], tmp_path, now=now, as_zip=True, **by(session, "aokafor")
        )
    assert result.path.suffix == ".zip" and result.counts["not_intact"] == 1
    with zipfile.ZipFile(result.path) as archive:
        names = archive.namelist()
        prefix = names[0].split("/")[0]
        rows = read_csv(archive.read(f"{prefix}/evidence.csv"))
        report = archive.read(f"{prefix}/report.html").decode()
    assert rows[0]["intact"] == "no" and "NO: the record no longer matches" in report


def test_unknown_cases_export_nothing(
    sessions: sessionmaker[Session], now: datetime, tmp_path: Path
) -> None:
    with transaction(sessions) as session, pytest.raises(UnknownCases) as caught:
        export_evidence(session, [424242], tmp_path / "out", now=now, **by(session, "bpatel"))
    assert caught.value.missing == [424242] and not (tmp_path / "out").exists()


def seed_school_cases(session: Session, now: datetime) -> dict[str, int]:
    """An abusive and a safeguarding case of Oakfield, each with an evidence record."""
    account = sync_example(session, now)
    ids = {}
    for category in (Category.ABUSIVE, Category.SAFEGUARDING):
        item = add_item(session, account, seen_at=now, text=f"a {category} reply", flagged=True)
        case = add_case(
            session, opened_at=now, item=item, category=category, school_id=account.school_id
        )
        capture(session, item, case, now)
        ids[category.value] = case.id
    return ids


SG, AB = "safeguarding", "abusive"
EVIDENCE_REQUESTS = [
    # staff (config/example.yaml), cases -> cases refused, refusal contains (None: exported)
    ("bpatel", [SG], [], None),  # Oakfield's DSL
    ("dmurphy", [SG], [], None),  # Oakfield's deputy DSL
    ("aokafor", [SG], [SG], "safeguarding case needs one of these roles: deputy_dsl, dsl"),
    ("gsmith", [SG], [SG], "deputy_dsl, dsl"),  # trust-wide IT: not safeguarding
    ("ewright", [SG], [SG], "school you do not serve"),  # Riverside's DSL
    ("aokafor", [AB], [], None),  # Oakfield's principal
    ("gsmith", [AB], [], None),  # trust-wide IT
    ("bpatel", [AB], [], None),
    ("cjones", [AB], [AB], "needs one of these roles: deputy_dsl, dsl, it_admin"),
    ("fali", [AB], [AB], "needs one of these roles"),  # trust-wide comms
    ("ewright", [AB], [AB], "school you do not serve"),  # Riverside's principal
    # one case refused refuses the whole export
    ("aokafor", [AB, SG], [SG], "deputy_dsl, dsl"),
]


@pytest.mark.parametrize(("staff", "which", "refused_which", "why"), EVIDENCE_REQUESTS)
def test_evidence_export_is_only_for_the_right_roles(
    sessions: sessionmaker[Session],
    now: datetime,
    tmp_path: Path,
    staff: str,
    which: list[str],
    refused_which: list[str],
    why: str | None,
) -> None:
    with transaction(sessions) as session:
        ids = seed_school_cases(session, now)
    wanted = [ids[w] for w in which]
    out = tmp_path / "out"
    with transaction(sessions) as session:
        if why is None:
            result = export_evidence(session, wanted, out, now=now, **by(session, staff))
            assert result.counts["cases"] == len(wanted)
        else:
            with pytest.raises(ExportRefused, match=why):
                export_evidence(session, wanted, out, now=now, **by(session, staff, "cli:pat"))
    with sessions() as session:
        events = session.scalars(
            select(t.AuditEvent).where(t.AuditEvent.action.like("case.evidence_export%"))
        ).all()
        assert audit.verify_chain(session)[1] == []
    if why is None:
        assert out.is_dir()
        assert sorted((e.action, e.case_id, e.actor) for e in events) == sorted(
            ("case.evidence_exported", cid, staff) for cid in wanted
        )
        return
    assert not out.exists()  # nothing written, nothing recorded as exported
    assert sorted((e.action, e.case_id) for e in events) == sorted(
        ("case.evidence_export_refused", ids[w]) for w in refused_which
    )
    for event in events:
        assert event.actor == staff and event.details == {"as": staff, "os_user": "cli:pat"}
        assert event.reason and why in event.reason


def test_evidence_export_for_no_active_member_of_staff_is_refused_and_audited(
    sessions: sessionmaker[Session], now: datetime, tmp_path: Path
) -> None:
    with transaction(sessions) as session:
        ids = seed_school_cases(session, now)
        session.execute(update(t.Staff).where(t.Staff.key == "bpatel").values(active=False))
    for staff in ("nobody", "bpatel"):
        with transaction(sessions) as session, pytest.raises(UnknownRequester, match=staff):
            export_evidence(session, [ids["abusive"]], tmp_path, now=now, **by(session, staff))
    with sessions() as session:
        refused = session.scalars(
            select(t.AuditEvent).where(t.AuditEvent.action == "case.evidence_export_refused")
        ).all()
        assert [(e.actor, e.details["as"]) for e in refused] == [
            ("cli:test", "nobody"),
            ("cli:test", "bpatel"),
        ]
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------- subject access


def seed_subject(session: Session, now: datetime) -> dict[str, Any]:
    account = sync_example(session, now - timedelta(days=30))
    troll_id = "did:plc:troll"
    mine = [
        add_item(session, account, seen_at=now, text="first <i>nasty</i>", handle="Troll.Example",
                 author_id=troll_id, flagged=True),
        add_item(session, account, seen_at=now, text="second", handle="troll.example",
                 author_id=troll_id),
        # the same account after a handle change: found through its author id
        add_item(session, account, seen_at=now, text="renamed", handle="new-name.example",
                 author_id=troll_id),
        add_item(session, account, seen_at=now, text="Åsa's post", handle="ÅSA.example"),
    ]  # fmt: skip
    others = [
        add_item(session, account, seen_at=now, text="not them", handle="troll.example.org"),
        add_item(session, account, seen_at=now, text="bystander", handle="bystander.example"),
    ]
    case = add_case(session, opened_at=now, item=mine[0], title="Abuse from troll")
    kept = capture(session, mine[0], case, now)
    hide = add_action(session, item=mine[0], case=case, at=now)
    # evidence whose item was since purged still belongs to the subject
    gone = add_item(session, account, seen_at=now, text="purged later", handle="TROLL.example",
                    author_id=troll_id)  # fmt: skip
    orphan = capture(session, gone, None, now)
    session.delete(gone)
    session.flush()
    bystander_case = add_case(session, opened_at=now, item=others[1])
    capture(session, others[1], bystander_case, now)
    return {
        "items": {i.id for i in mine[:3]},
        "asa": mine[3].id,
        "others": {i.id for i in others},
        "case": case.id,
        "evidence": {kept.id, orphan.id},
        "action": hide.id,
    }


@pytest.mark.parametrize("query", ["@TROLL.example", "troll.EXAMPLE", " @troll.example"])
def test_subject_export_holds_everything_about_the_author(
    sessions: sessionmaker[Session], now: datetime, tmp_path: Path, query: str
) -> None:
    with transaction(sessions) as session:
        seeded = seed_subject(session, now)
    with transaction(sessions) as session:
        result = export_subject(
            session, query, tmp_path, now=now, **by(session, "aokafor", "cli:dpo")
        )
    folder = result.path
    assert folder.name == "subject-troll.example-20261123T093000Z"
    assert result.counts == {
        "items": 3, "assessments": 3, "cases": 1, "case_history": 1, "evidence": 2, "actions": 1,
    }  # fmt: skip
    document = json.loads((folder / "subject.json").read_text(encoding="utf-8"))
    assert {i["item_id"] for i in document["items"]} == seeded["items"]
    assert document["matched_handles"] == ["Troll.Example", "new-name.example", "troll.example"]
    assert {e["evidence_id"] for e in document["evidence"]} == seeded["evidence"]
    assert [c["case_id"] for c in document["cases"]] == [seeded["case"]]
    assert document["case_history"][0]["action"] == "case.opened"
    assert [a["action_id"] for a in document["actions"]] == [seeded["action"]]
    assert all(e["intact"] for e in document["evidence"])
    items_csv = read_csv((folder / "items.csv").read_bytes())
    assert {int(r["item_id"]) for r in items_csv} == seeded["items"]
    assert {r["text"] for r in items_csv} == {"first <i>nasty</i>", "second", "renamed"}
    index = (folder / "index.html").read_text(encoding="utf-8")
    assert {tag for tag, _ in parse_html(index).tags} <= ALLOWED_TAGS
    assert "first &lt;i&gt;nasty&lt;/i&gt;" in index and "bystander" not in index
    assert "not them" not in index
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["files"]) == {
        "index.html", "subject.json", "items.csv", "assessments.csv", "cases.csv",
        "case_history.csv", "evidence.csv", "actions.csv",
    }  # fmt: skip
    with sessions() as session:
        event = session.scalars(
            select(t.AuditEvent).where(t.AuditEvent.action == "records.subject_exported")
        ).one()
        assert event.details == {"counts": dict(result.counts), "os_user": "cli:dpo"}
        assert event.actor == "aokafor"
        assert "troll" not in json.dumps(event.details).lower()  # the log never holds the handle


def test_subject_export_matches_unicode_handles_and_reports_nothing_held(
    sessions: sessionmaker[Session], now: datetime, tmp_path: Path
) -> None:
    with transaction(sessions) as session:
        seeded = seed_subject(session, now)
    with transaction(sessions) as session:
        asa = export_subject(
            session, "@åsa.EXAMPLE", tmp_path, now=now, as_zip=True, **by(session, "gsmith")
        )
        nobody = export_subject(session, "@nobody", tmp_path, now=now, **by(session, "ewright"))
    with zipfile.ZipFile(asa.path) as archive:
        document = json.loads(archive.read(f"{asa.path.stem}/subject.json"))
    assert [i["item_id"] for i in document["items"]] == [seeded["asa"]]
    assert set(nobody.counts.values()) == {0}
    assert "none" in (nobody.path / "index.html").read_text(encoding="utf-8")


SUBJECT_REQUESTS = [
    # staff (config/example.yaml) -> refusal contains (None: exported)
    ("aokafor", None),  # principal and SLT
    ("ewright", None),  # another school's SLT: subject access is the trust's
    ("bpatel", None),  # DSL
    ("gsmith", None),  # IT
    ("dmurphy", "a subject-access export needs one of these roles: dsl, it_admin, principal, slt"),
    ("cjones", "subject-access export needs"),
    ("fali", "subject-access export needs"),
]


@pytest.mark.parametrize(("staff", "why"), SUBJECT_REQUESTS)
def test_subject_export_is_only_for_the_right_roles(
    sessions: sessionmaker[Session], now: datetime, tmp_path: Path, staff: str, why: str | None
) -> None:
    with transaction(sessions) as session:
        seed_subject(session, now)
    out = tmp_path / "out"
    with transaction(sessions) as session:
        if why is None:
            result = export_subject(session, "@troll.example", out, now=now, **by(session, staff))
            assert result.counts["items"] == 3
        else:
            with pytest.raises(ExportRefused, match=why):
                export_subject(session, "@troll.example", out, now=now, **by(session, staff))
    with sessions() as session:
        [event] = session.scalars(
            select(t.AuditEvent).where(t.AuditEvent.action.like("records.subject_export%"))
        ).all()
    assert event.actor == staff and event.details["os_user"] == "cli:test"
    assert "troll" not in json.dumps([event.details, event.reason]).lower()  # never the handle
    if why is None:
        assert event.action == "records.subject_exported" and out.is_dir()
    else:
        assert event.action == "records.subject_export_refused" and why in (event.reason or "")
        assert not out.exists()
