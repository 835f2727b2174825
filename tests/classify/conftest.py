"""A tiny BERT checkpoint in Detoxify's format, built once per session (nothing downloads)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from monitor.classify.checkpoint import basic_vocab, build_random_bert
from tests.classify.classify_support import LABELLED, TinyModel


@pytest.fixture(scope="session", autouse=True)
def _offline() -> Iterator[None]:
    """No Hugging Face network access in these tests, ever."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _words() -> list[str]:
    words: set[str] = set()
    for line in LABELLED.read_text(encoding="utf-8").splitlines():
        for word in json.loads(line)["text"].lower().split():
            words.add(word.strip(".,!?'\"()"))
    return sorted(w for w in words if w.isalpha())


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """A 2-layer, 32-wide BERT with its own small vocabulary, random but spread-out scores."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    checkpoint = build_random_bert(folder, vocab=basic_vocab(_words()), classifier_scale=60.0)
    return TinyModel(checkpoint=checkpoint, folder=folder)
