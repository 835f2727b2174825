"""The evidence pack from the case page: a PDF exhibit plus the JSON bundle, for those the
evidence export's rule allows, every export (and refusal) in the audit log."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable

import pypdf
from sqlalchemy import select
from starlette.testclient import TestClient

from monitor.exports.pdf import FONT_DIR, EvidencePack, PackPost, evidence_pack_pdf
from monitor.storage import tables as t
from monitor.storage.db import transaction
from tests.web.conftest import Trust, audit_actions, csrf_of

Client = Callable[[str], TestClient]
LONG_URL = "https://example.test/" + "x" * 400 + "?q=" + "y" * 120
LONG_TEXT = f"you idiot see {LONG_URL} " + "unbrokenword" * 40 + " Ελληνικά кириллица end"


def _pdf_text(data: bytes) -> tuple[int, list[str]]:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return len(reader.pages), [page.extract_text() for page in reader.pages]


def _squash(text: str) -> str:
    return "".join(text.split())


def _pack(client: TestClient, case_id: int, form: str = "zip") -> object:
    page = client.get(f"/cases/{case_id}").text
    return client.post(f"/cases/{case_id}/evidence", data={"csrf": csrf_of(page), "format": form})


def test_dsl_gets_the_pdf_and_json_bundle_and_the_export_is_audited(
    trust: Trust, client_for: Client
) -> None:
    ab = trust.ids["abusive_case"]
    with transaction(trust.sessions) as session:
        case = session.get(t.Case, ab)
        assert case is not None and case.item_id is not None
        item = session.get(t.Item, case.item_id)
        assert item is not None
        item.text = LONG_TEXT
    client = client_for("dana")
    page = client.get(f"/cases/{ab}").text
    assert f'action="/cases/{ab}/evidence"' in page
    response = client.post(f"/cases/{ab}/evidence", data={"csrf": csrf_of(page), "format": "zip"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert "attachment;" in response.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    names = archive.namelist()
    pdf_name = next(n for n in names if n.endswith(".pdf"))
    json_name = next(n for n in names if n.endswith(".json") and n != "manifest.json")
    pdf, bundle = archive.read(pdf_name), archive.read(json_name)
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["files"][pdf_name] == hashlib.sha256(pdf).hexdigest()

    pages, texts = _pdf_text(pdf)
    everything = "\n".join(texts)
    exhibit = re.search(r"Exhibit reference: (\S+)", everything)
    assert exhibit and exhibit.group(1) == f"DS/{ab}/20261123T093000Z"
    for number, text in enumerate(texts, start=1):
        assert f"Exhibit {exhibit.group(1)}" in text  # on every page
        assert f"page {number} of {pages}" in text
    assert "Produced by: Dana Safeguarding (DSL) (dana; web)" in everything
    assert "ab" * 32 in _squash(everything)  # the evidence record's hash
    assert hashlib.sha256(bundle).hexdigest() in _squash(everything)  # the bundle's
    # the comment as shown, nothing cut off: the same characters, only broken into lines
    assert _squash(LONG_TEXT) in _squash(everything)
    assert "Sports day is on Friday!" in everything  # its thread
    document = json.loads(bundle)
    assert document["generated_by"] == "dana" and document["generated_via"] == "web"
    assert [c["case_id"] for c in document["cases"]] == [ab]

    with trust.sessions() as session:
        event = session.scalars(
            select(t.AuditEvent).where(t.AuditEvent.action == "case.evidence_exported")
        ).one()
    assert (event.actor, event.case_id, event.details["os_user"]) == ("dana", ab, "web")
    assert event.details["files"] == {
        pdf_name: hashlib.sha256(pdf).hexdigest(),
        json_name: hashlib.sha256(bundle).hexdigest(),
    }


def test_pdf_and_json_alone(trust: Trust, client_for: Client) -> None:
    client = client_for("dana")
    ab = trust.ids["abusive_case"]
    pdf = _pack(client, ab, "pdf")
    assert pdf.headers["content-type"] == "application/pdf"  # type: ignore[attr-defined]
    assert pdf.content.startswith(b"%PDF-")  # type: ignore[attr-defined]
    bundle = _pack(client, ab, "json")
    assert json.loads(bundle.content)["cases"][0]["case_id"] == ab  # type: ignore[attr-defined]


def test_safeguarding_pack_is_the_dsls_alone(trust: Trust, client_for: Client) -> None:
    sg = trust.ids["safeguarding_case"]
    dsl = _pack(client_for("dana"), sg, "pdf")
    assert dsl.status_code == 200  # type: ignore[attr-defined]
    _, texts = _pdf_text(dsl.content)  # type: ignore[attr-defined]
    assert "secret-disclosure-text about home" in "\n".join(texts)
    senior = client_for("sam")
    page = senior.get(f"/cases/{sg}").text
    assert f'action="/cases/{sg}/evidence"' not in page  # not offered
    refused = senior.post(f"/cases/{sg}/evidence", data={"csrf": csrf_of(page), "format": "pdf"})
    assert refused.status_code == 403
    assert "secret-disclosure" not in refused.text
    assert ("sam", "case.evidence_export_refused", f"case:{sg}") in audit_actions(trust.sessions)


def test_moderators_and_other_schools_get_no_pack(trust: Trust, client_for: Client) -> None:
    ab = trust.ids["abusive_case"]
    moderator = client_for("morgan")
    page = moderator.get(f"/cases/{ab}").text
    assert f'action="/cases/{ab}/evidence"' not in page
    refused = moderator.post(f"/cases/{ab}/evidence", data={"csrf": csrf_of(page), "format": "zip"})
    assert refused.status_code == 403 and "needs one of these roles" in refused.text
    elm = client_for("elmo")
    other = elm.post(
        f"/cases/{ab}/evidence", data={"csrf": csrf_of(elm.get("/queue").text), "format": "zip"}
    )
    assert other.status_code == 403
    actions = audit_actions(trust.sessions)
    assert ("morgan", "case.evidence_export_refused", f"case:{ab}") in actions
    assert not any(a == "case.evidence_exported" for _, a, _ in actions)


def test_pack_needs_the_csrf_token(trust: Trust, client_for: Client) -> None:
    ab = trust.ids["abusive_case"]
    response = client_for("dana").post(f"/cases/{ab}/evidence", data={"format": "pdf"})
    assert response.status_code == 403 and "Form expired" in response.text
    assert not any(a == "case.evidence_exported" for _, a, _ in audit_actions(trust.sessions))


def test_pdf_wraps_every_long_line_and_numbers_pages() -> None:
    post = PackPost("A @a", "today", LONG_TEXT * 3, url=LONG_URL, is_case_item=True)
    pack = EvidencePack(
        exhibit="AB/1/20261123T093000Z",
        case_id=1,
        title="t",
        produced_by="A",
        produced_at="now",
        facts=[("School", "Oak")],
        bundle_sha256="cd" * 32,
        audit_chain="intact",
        thread=[post],
        history=[f"line {n}" for n in range(150)],
    )
    pages, texts = _pdf_text(evidence_pack_pdf(pack))
    assert pages >= 3
    assert all(f"page {n} of {pages}" in text for n, text in enumerate(texts, start=1))
    joined = "\n".join(texts)
    # the text runs over a page break: leave out the running header and footer
    body = "\n".join(line for line in joined.splitlines() if not line.startswith("Exhibit AB/"))
    assert _squash(LONG_TEXT * 3) in _squash(body)
    # no extracted line is longer than fits on A4 in 10pt: nothing ran off the margin
    assert max(len(line) for line in joined.splitlines()) < 120
    if not (FONT_DIR / "DejaVuSans.ttf").is_file():  # core font: shown as code points
        assert "[U+0395]" in joined
