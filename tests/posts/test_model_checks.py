"""The toxicity model takes part in the checks before approval and before publishing: the
Detoxify classifier (the tiny test checkpoint, loaded through the real pipeline) flags abusive
or threatening wording the word rules do not know, as a warning only a principal may override."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor import posts
from monitor.classify.checkpoint import basic_vocab, build_random_bert
from monitor.classify.pipeline import ClassifierPipeline
from monitor.config_models import Config
from monitor.posts import Checker, PostError
from monitor.rules.posting import CheckLevel, DraftContent
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.sync import apply_config
from tests.posts.posts_support import DRAFTER, MASTODON_KEY, PRINCIPAL, trust_config

# plain words the rules do not flag; the tiny model scores them (randomly, but spread out)
TEXTS = [
    "Sports day is on Friday",
    "The library opens late on Tuesday",
    "Year six visit the museum next week",
    "Parents evening starts at four",
    "The choir sings in the hall tonight",
    "Bring a packed lunch for the trip",
]
WORDS = sorted({w.lower() for text in TEXTS for w in text.split()})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"
    folder = tmp_path_factory.mktemp("tiny-bert")
    checkpoint = build_random_bert(folder, vocab=basic_vocab(WORDS), classifier_scale=60.0)
    yield checkpoint, folder
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def with_model(cfg: Config, tiny: tuple[Path, Path], thresholds: dict[str, Any]) -> Config:
    checkpoint, folder = tiny
    classifier = cfg.classifier.model_copy(
        update={
            "checkpoint": str(checkpoint),
            "huggingface_config_path": str(folder),
            "thresholds": thresholds,
            "concern": cfg.classifier.concern.model_copy(update={"enabled": False}),
            "precision": "fp32",
        }
    )
    return cfg.model_copy(update={"classifier": classifier})


def pipeline_of(cfg: Config) -> ClassifierPipeline:
    return ClassifierPipeline(cfg.classifier, cfg.schools)


def content(text: str, now: datetime) -> DraftContent:
    return DraftContent((text,), targets=(MASTODON_KEY,), publish_at=now + timedelta(days=1))


@pytest.fixture
def scored(tiny: tuple[Path, Path], tmp_path: Path) -> dict[str, float]:
    """Each text's insult score from the tiny model (with no threshold set, nothing fires)."""
    cfg = with_model(trust_config(tmp_path), tiny, {})
    pipeline = pipeline_of(cfg)
    rows = pipeline.model_scores(TEXTS)
    assert rows is not None, pipeline.model_status.message
    return {text: row["insult"] for text, row in zip(TEXTS, rows, strict=True)}


def test_the_model_flags_wording_the_rules_pass_and_spares_the_rest(
    tiny: tuple[Path, Path], tmp_path: Path, now: datetime, scored: dict[str, float]
) -> None:
    ranked = sorted(TEXTS, key=scored.__getitem__)
    low, high = ranked[0], ranked[-1]
    assert scored[high] > scored[low]
    threshold = (scored[low] + scored[high]) / 2
    cfg = with_model(trust_config(tmp_path), tiny, {"insult": threshold, "threat": None})
    model_checker = Checker.with_model(cfg, pipeline_of(cfg))
    rules_only = Checker.for_config(cfg)

    flagged = model_checker.run(content(high, now), "oakfield", now)
    assert [(f.check, f.level, f.where) for f in flagged] == [
        ("abusive", CheckLevel.WARN, "part 1")
    ]
    assert "insult" in flagged[0].message and "(model)" in flagged[0].message
    # the same text passes the word rules alone: the finding is the model's
    assert rules_only.run(content(high, now), "oakfield", now) == []
    # a text scored under the threshold is spared
    assert model_checker.run(content(low, now), "oakfield", now) == []


def test_model_warning_is_overridden_only_by_a_principal_and_rechecked_before_publishing(
    tiny: tuple[Path, Path],
    tmp_path: Path,
    now: datetime,
    sessions: sessionmaker[Session],
    scored: dict[str, float],
) -> None:
    high = max(TEXTS, key=scored.__getitem__)
    base = trust_config(tmp_path, approvers_by_school={"oakfield": ["principal", "slt", "comms"]})
    cfg = with_model(base, tiny, {"insult": scored[high] - 1e-6, "threat": None})
    checker = Checker.with_model(cfg, pipeline_of(cfg))
    with transaction(sessions) as session:
        apply_config(session, cfg, now=now)
        draft = posts.create_draft(
            session,
            checker,
            school="oakfield",
            staff_id=DRAFTER,
            content=content(high, now),
            now=now,
        )
        draft_id = draft.id
        assert [f["check"] for f in draft.findings] == ["abusive"]
    key = "abusive@part 1"
    # without an override the warning stops approval
    stop = "the checks stop this post: abusive at part 1"
    with pytest.raises(PostError, match=stop), transaction(sessions) as session:
        posts.approve(session, checker, draft_id, staff_id=PRINCIPAL, now=now)
    # a comms approver (allowed to approve here) may not override: only a principal
    with (
        pytest.raises(PostError, match="only principal may override"),
        transaction(sessions) as session,
    ):
        posts.approve(
            session, checker, draft_id, staff_id="dmurphy", now=now, overrides={key: "fine"}
        )
    with transaction(sessions) as session:
        posts.approve(
            session,
            checker,
            draft_id,
            staff_id=PRINCIPAL,
            now=now,
            overrides={key: "a quotation from the play"},
        )
        publication = session.scalars(
            select(t.Publication).where(t.Publication.draft_id == draft_id)
        ).one()
        publication_id = publication.id

    # just before publishing the model runs again: with a stricter threshold now a threat
    # fires too, which nobody overrode, so nothing is published
    stricter = with_model(base, tiny, {"insult": 0.0, "threat": 0.0})
    calls: list[str] = []

    def publisher(_account: t.Account) -> Any:
        calls.append("publish")
        raise AssertionError("must not publish")

    outcome = posts.publish_one(
        sessions,
        Checker.with_model(stricter, pipeline_of(stricter)),
        publisher,
        publication_id,
        now + timedelta(days=2),
    )
    assert outcome.state == posts.BLOCKED and "threat at part 1" in outcome.detail
    assert calls == []
