"""A case's evidence pack as a PDF: an exhibit for the DSL, LADO or police (R7).

Every page carries the exhibit reference and ``page N of M``; the first says who produced
it and when, and the SHA-256 of the JSON bundle handed over with it. Long words and URLs are
broken across lines (never cut off at the margin). Text is set in DejaVu Sans (Debian's
``fonts-dejavu-core``) so non-Latin comments print as written; without the font it falls
back to a core PDF font and writes characters it cannot show as ``[U+XXXX]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import WrapMode, XPos, YPos

from monitor.exports.format import visible

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT = "DejaVu"
FALLBACK_FONT = "Helvetica"
LATIN_1_END = 0x100  # the fallback font covers Latin-1 only


@dataclass(frozen=True)
class PackPost:
    """A post of the thread as the platform showed it."""

    author: str
    when: str
    text: str
    url: str = ""
    is_case_item: bool = False
    note: str = ""


@dataclass(frozen=True)
class PackEvidence:
    """A stored evidence record."""

    record_id: int
    captured: str
    captured_by: str
    sha256: str
    intact: bool


@dataclass(frozen=True)
class EvidencePack:
    """Everything the PDF shows."""

    exhibit: str
    case_id: int
    title: str
    produced_by: str
    produced_at: str
    facts: Sequence[tuple[str, str]]
    bundle_sha256: str
    audit_chain: str
    thread: Sequence[PackPost] = field(default_factory=tuple)
    evidence: Sequence[PackEvidence] = field(default_factory=tuple)
    history: Sequence[str] = field(default_factory=tuple)


class _Document(FPDF):
    def __init__(self, exhibit: str) -> None:
        super().__init__(format="A4")
        self.exhibit = exhibit
        self.unicode = (FONT_DIR / "DejaVuSans.ttf").is_file()
        if self.unicode:
            self.add_font(FONT, "", str(FONT_DIR / "DejaVuSans.ttf"))
            self.add_font(FONT, "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
            self.add_font(FONT, "I", str(FONT_DIR / "DejaVuSans-Oblique.ttf"))
        self.family = FONT if self.unicode else FALLBACK_FONT
        self.set_auto_page_break(auto=True, margin=20)
        self.set_margins(18, 18, 18)
        self.alias_nb_pages()
        self.set_title(f"Evidence pack {exhibit}")
        self.set_creator("School Social Monitor")

    def clean(self, text: str) -> str:
        """Text the font can print: invisible characters shown, others as ``[U+XXXX]``."""
        text = visible(text)
        if self.unicode:
            return text
        return "".join(c if ord(c) < LATIN_1_END else f"[U+{ord(c):04X}]" for c in text)

    def header(self) -> None:
        self.set_font(self.family, "B", 9)
        self.cell(0, 6, self.clean(f"Exhibit {self.exhibit}"), align="R")
        self.ln(8)

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font(self.family, "", 8)
        self.cell(
            0, 6, self.clean(f"Exhibit {self.exhibit} · page {self.page_no()} of {{nb}}"), align="C"
        )

    def heading(self, text: str) -> None:
        self.ln(2)
        self.set_font(self.family, "B", 12)
        self.para(text, bold=True, size=12)
        self.ln(1)

    def para(self, text: str, *, bold: bool = False, italic: bool = False, size: int = 10) -> None:
        style = ("B" if bold else "") + ("I" if italic else "")
        self.set_font(self.family, style, size)
        # CHAR wrapping inside a word that does not fit: nothing runs off the page
        self.multi_cell(
            0,
            5,
            self.clean(text),
            wrapmode=WrapMode.WORD,
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )


def evidence_pack_pdf(pack: EvidencePack) -> bytes:
    """The PDF of ``pack``."""
    doc = _Document(pack.exhibit)
    doc.add_page()
    doc.para(f"Evidence pack: case {pack.case_id}", bold=True, size=16)
    doc.para(pack.title, size=11)
    doc.ln(2)
    doc.para(f"Exhibit reference: {pack.exhibit}")
    doc.para(f"Produced by: {pack.produced_by}")
    doc.para(f"Produced at: {pack.produced_at}")
    doc.para(f"SHA-256 of the JSON bundle produced with it: {pack.bundle_sha256}")
    doc.para(f"Audit log chain: {pack.audit_chain}")
    doc.heading("The case")
    for label, value in pack.facts:
        doc.para(f"{label}: {value}")
    doc.heading("The comment as shown, in its thread")
    if not pack.thread:
        doc.para("No stored post belongs to this case.", italic=True)
    for post in pack.thread:
        marker = "THE COMMENT OF THIS CASE · " if post.is_case_item else ""
        doc.para(f"{marker}{post.author} · {post.when}{post.note}", bold=post.is_case_item)
        doc.para(post.text)
        if post.url:
            doc.para(f"Link: {post.url}", size=8)
        doc.ln(2)
    doc.heading("Evidence records")
    if not pack.evidence:
        doc.para("No evidence record was captured.", italic=True)
    for record in pack.evidence:
        state = "intact" if record.intact else "DOES NOT MATCH ITS HASH"
        doc.para(
            f"Record {record.record_id}, captured {record.captured} by {record.captured_by} "
            f"({state})"
        )
        doc.para(f"SHA-256: {record.sha256}", size=9)
    doc.heading("History")
    for line in pack.history:
        doc.para(line, size=9)
    return bytes(doc.output())
