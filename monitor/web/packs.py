"""The evidence pack of a case as the web hands it over: a PDF exhibit plus the JSON bundle.

Who may have it is decided by the evidence export's rule (``monitor.exports.evidence``, which
asks ``monitor/rules``); this module only lays out what that export gathered, with the
thread as the case page shows it to the same member of staff.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from datetime import datetime

from monitor.exports.bundle import stamp
from monitor.exports.evidence import EvidenceBuild
from monitor.exports.format import london_text, to_json, utc_text
from monitor.exports.pdf import EvidencePack, PackEvidence, PackPost, evidence_pack_pdf
from monitor.web.views import CasePage

FORMATS = ("zip", "pdf", "json")


def exhibit_reference(initials_of: str, case_id: int, now: datetime) -> str:
    """``DS/12/20261123T093000Z``: producer's initials, case, time (unique per export)."""
    initials = "".join(w[0] for w in initials_of.split() if w[:1].isalpha()).upper()[:4] or "X"
    return f"{initials}/{case_id}/{stamp(now)}"


@dataclass(frozen=True)
class Handover:
    """The files of one evidence pack, and the name each is downloaded as."""

    exhibit: str
    files: dict[str, bytes]

    def download(self, form: str) -> tuple[str, bytes, str]:
        """(file name, bytes, media type) of ``form``: the PDF, the JSON, or both in a zip."""
        pdf_name, json_name = _names(self.files)
        if form == "pdf":
            return pdf_name, self.files[pdf_name], "application/pdf"
        if form == "json":
            return json_name, self.files[json_name], "application/json"
        buffer = io.BytesIO()
        manifest = {
            "files": {name: hashlib.sha256(data).hexdigest() for name, data in self.files.items()}
        }
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in {**self.files, "manifest.json": to_json(manifest)}.items():
                archive.writestr(name, data)
        return pdf_name.removesuffix(".pdf") + ".zip", buffer.getvalue(), "application/zip"


def _names(files: dict[str, bytes]) -> tuple[str, str]:
    pdf = next(n for n in files if n.endswith(".pdf"))
    return pdf, next(n for n in files if n.endswith(".json"))


def evidence_handover(
    built: EvidenceBuild, page: CasePage, *, produced_by: str, now: datetime
) -> Handover:
    """The PDF exhibit and the JSON bundle of one case (``built`` holds exactly that case)."""
    (case,) = built.document["cases"]
    exhibit = exhibit_reference(built.requester.person.name, page.case_id, now)
    bundle = built.files["evidence.json"]
    chain = built.document["audit_chain"]
    pack = EvidencePack(
        exhibit=exhibit,
        case_id=page.case_id,
        title=page.title,
        produced_by=produced_by,
        produced_at=f"{london_text(now)} ({utc_text(now)})",
        facts=[
            ("School", page.school),
            ("Account", f"{page.account} ({page.platform})" if page.account else "none"),
            ("Category", page.category),
            ("Severity", page.severity),
            ("State", page.state),
            ("Who has it", page.assignee or "nobody"),
            ("Police step", page.police_step or "none recorded"),
        ],
        bundle_sha256=hashlib.sha256(bundle).hexdigest(),
        audit_chain=(
            f"intact over {chain['events_checked']} events"
            if chain["intact"]
            else f"BROKEN at {len(chain['breaks'])} place(s): see the JSON bundle"
        ),
        thread=[
            PackPost(
                author=f"{post.author_name} @{post.author_handle}".strip()
                if post.author_handle
                else "",
                when=post.when,
                text="".join(seg.text for seg in post.segments),
                url=post.url,
                is_case_item=post.is_case_item,
                note="" if post.visibility == "visible" else f" · {post.visibility}",
            )
            for post in page.thread
        ],
        evidence=[
            PackEvidence(
                record_id=int(row["evidence_id"]),
                captured=str(row.get("captured_at_london") or row.get("captured_at_utc") or ""),
                captured_by=str(row.get("captured_by") or "worker"),
                sha256=str(row["sha256"]),
                intact=bool(row["intact"]),
            )
            for row in case["evidence"]
        ],
        history=page.history,
    )
    stem = f"case-{page.case_id}-evidence-{stamp(now)}"
    return Handover(exhibit, {f"{stem}.pdf": evidence_pack_pdf(pack), f"{stem}.json": bundle})
