"""Paths and types shared by the classifier tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"
LABELLED = DATA / "labelled_comments.jsonl"
PROTECTED = DATA / "protected_pupils.txt"


@dataclass(frozen=True)
class TinyModel:
    """Where the tiny checkpoint and its Hugging Face folder are."""

    checkpoint: Path
    folder: Path
