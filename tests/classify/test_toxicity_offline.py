"""The Detoxify wrapper on a tiny checkpoint loaded through the real Detoxify class."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from detoxify import Detoxify

from monitor.classify.checkpoint import (
    ORIGINAL_CLASSES,
    UnsafeCheckpointError,
    basic_vocab,
    build_random_bert,
    load_checkpoint,
    localised,
    read_checkpoint_info,
)
from monitor.classify.toxicity import ModelLoadError, ToxicityModel, load_detoxify
from monitor.config_models import Classifier
from tests.classify.classify_support import LABELLED, TinyModel

TEXTS = [json.loads(line)["text"] for line in LABELLED.read_text(encoding="utf-8").splitlines()]
LABELS = ("toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack")


def _config(tiny: TinyModel, **extra: object) -> Classifier:
    return Classifier(
        checkpoint=str(tiny.checkpoint), huggingface_config_path=str(tiny.folder), **extra
    )


@pytest.fixture(scope="module")
def model(tiny_model: TinyModel) -> ToxicityModel:
    return ToxicityModel.load(_config(tiny_model, batch_size=8))


def test_loads_through_the_real_detoxify_class(model: ToxicityModel) -> None:
    assert isinstance(model.detoxify, Detoxify)
    assert model.labels == LABELS  # renamed from the checkpoint's toxic / severe_toxic / ...
    # the tokenizer read the folder's vocabulary (transformers 5 ignores vocab_file=)
    assert model.detoxify.tokenizer.tokenize("school") == ["school"]


@pytest.mark.slow
def test_batched_scores_equal_one_at_a_time_predict(model: ToxicityModel) -> None:
    texts = [*TEXTS[:120], "", "x", "word " * 700]  # empty, tiny and truncated texts too
    batched = model.score(texts)
    assert len(batched) == len(texts)
    for text, scores in zip(texts, batched, strict=True):
        single = model.detoxify.predict(text)
        assert set(scores) == set(LABELS)
        for label in LABELS:
            assert scores[label] == pytest.approx(single[label], abs=1e-4)


def test_scores_come_back_in_input_order_whatever_the_lengths(model: ToxicityModel) -> None:
    texts = sorted(TEXTS[:40], key=len, reverse=True)  # sorting inside must not reorder
    forward = model.score(texts)
    backward = model.score(texts[::-1])
    # Same text, same scores, in input order; a different batch mix may move the last float bit.
    for ahead, behind in zip(forward, backward[::-1], strict=True):
        assert ahead.keys() == behind.keys()
        for label in ahead:
            assert ahead[label] == pytest.approx(behind[label], abs=1e-6)
    assert len({round(s["toxicity"], 6) for s in forward}) > 10  # a real spread, not a constant


def test_duplicates_are_scored_once_and_returned_everywhere(model: ToxicityModel) -> None:
    scores = model.score(["same text", "other", "same text"])
    assert scores[0] == scores[2]
    assert scores[0] != scores[1]


def test_batches_respect_the_size_and_the_token_budget(model: ToxicityModel) -> None:
    lengths = [5] * 20 + [400] * 5
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches = list(model._batches(order, lengths))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(b) <= model.batch_size for b in batches)
    assert all(len(b) * max(lengths[i] for i in b) <= model.max_batch_tokens for b in batches)


def test_empty_input_scores_nothing(model: ToxicityModel) -> None:
    assert model.score([]) == []


def test_missing_model_max_length_is_fixed_so_long_texts_do_not_crash(
    tiny_model: TinyModel, tmp_path: Path
) -> None:
    folder = tmp_path / "hf"
    shutil.copytree(tiny_model.folder, folder)
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True})
    )
    config = Classifier(checkpoint=str(folder / "model.ckpt"), huggingface_config_path=str(folder))
    model = ToxicityModel.load(config)
    assert model.detoxify.tokenizer.model_max_length == 512
    assert len(model.score(["very long " * 1000])) == 1


@pytest.mark.slow
def test_model_type_naming_a_hub_model_is_pointed_at_the_local_folder(
    tiny_model: TinyModel, tmp_path: Path
) -> None:
    # a released checkpoint says model_type "bert-base-uncased": offline that cannot resolve
    folder = tmp_path / "hf"
    shutil.copytree(tiny_model.folder, folder)
    ckpt = build_random_bert(
        folder, vocab=basic_vocab(["school"]), model_type="bert-base-uncased", seed=3
    )
    assert read_checkpoint_info(ckpt).model_type == "bert-base-uncased"
    with pytest.raises(OSError):
        Detoxify(checkpoint=str(ckpt), huggingface_config_path=str(folder))  # the pitfall
    assert localised(load_checkpoint(ckpt), folder)  # pointed at the local folder
    model = ToxicityModel.load(
        Classifier(checkpoint=str(ckpt), huggingface_config_path=str(folder))
    )
    assert model.score(["school"])[0].keys() == set(LABELS)


def test_a_checkpoint_already_pointing_at_its_folder_is_used_as_is(tiny_model: TinyModel) -> None:
    assert localised(load_checkpoint(tiny_model.checkpoint), tiny_model.folder) is False


def test_relative_paths_resolve_against_the_config_folder(tiny_model: TinyModel) -> None:
    config = Classifier(checkpoint="model.ckpt", huggingface_config_path=".")
    model = ToxicityModel.load(config, base_dir=tiny_model.folder)
    assert len(model.score(["hello"])) == 1


def _broken_folder(tiny: TinyModel, tmp_path: Path) -> Path:
    folder = tmp_path / "hf"
    shutil.copytree(tiny.folder, folder)
    return folder


@pytest.mark.parametrize(
    ("breakage", "reason_part", "fix_part"),
    [
        ("no_checkpoint", "does not exist", "fix the path"),
        ("labels", "declares 2 labels but the checkpoint scores 6", '"num_labels": 6'),
        ("no_tokenizer", "has no tokenizer files", "AutoTokenizer"),
        ("no_folder", "is not a folder", "config.json"),
        ("not_a_checkpoint", "not a Detoxify checkpoint", "again"),
        ("garbage", "damaged or not a Detoxify checkpoint", "again"),
        ("cuda", "no usable CUDA GPU", "device: cpu"),
    ],
)
def test_load_failures_name_the_cause_and_the_fix(
    tiny_model: TinyModel, tmp_path: Path, breakage: str, reason_part: str, fix_part: str
) -> None:
    folder = _broken_folder(tiny_model, tmp_path)
    checkpoint = folder / "model.ckpt"
    device = "cpu"
    if breakage == "no_checkpoint":
        checkpoint.unlink()
    elif breakage == "labels":
        config = json.loads((folder / "config.json").read_text())
        config["id2label"] = {"0": "a", "1": "b"}
        config["label2id"] = {"a": 0, "b": 1}
        (folder / "config.json").write_text(json.dumps(config))
    elif breakage == "no_tokenizer":
        (folder / "vocab.txt").unlink()
    elif breakage == "no_folder":
        folder = tmp_path / "missing"
    elif breakage == "not_a_checkpoint":
        torch.save({"weights": [1, 2]}, checkpoint)
    elif breakage == "garbage":
        checkpoint.write_bytes(b"this is not a zip or a pickle")
    elif breakage == "cuda":
        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
        device = "cuda"
    config = Classifier(
        checkpoint=str(checkpoint), huggingface_config_path=str(folder), device=device
    )
    with pytest.raises(ModelLoadError) as info:
        load_detoxify(config)
    assert reason_part in info.value.reason
    assert fix_part in info.value.fix


def test_a_bad_device_name_is_explained(tiny_model: TinyModel) -> None:
    with pytest.raises(ModelLoadError, match="not a torch device"):
        load_detoxify(_config(tiny_model, device="toaster"))


def test_checkpoint_classes_are_the_released_names(tiny_model: TinyModel) -> None:
    info = read_checkpoint_info(tiny_model.checkpoint)
    assert info.classes == ORIGINAL_CLASSES
    assert info.model_name == "BertForSequenceClassification"


class _RunsCode:
    """Unpickling this calls ``open(marker, "w")``: a stand-in for any code a file could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(
    tiny_model: TinyModel, tmp_path: Path
) -> None:
    folder = _broken_folder(tiny_model, tmp_path)
    checkpoint = folder / "model.ckpt"
    loaded = torch.load(tiny_model.checkpoint, weights_only=True)
    marker = tmp_path / "code-ran"
    loaded["config"]["extra"] = _RunsCode(marker)
    torch.save(loaded, checkpoint)
    config = Classifier(checkpoint=str(checkpoint), huggingface_config_path=str(folder))
    with pytest.raises(ModelLoadError) as info:
        load_detoxify(config)
    assert not marker.exists()  # the object was never built: no code ran
    assert "refused" in info.value.reason
    assert "other than tensors and plain data" in info.value.reason
    assert "publisher" in info.value.fix
    with pytest.raises(UnsafeCheckpointError):
        read_checkpoint_info(checkpoint)
    assert not marker.exists()


def test_a_downloaded_model_is_read_safely_and_its_progress_line_goes_to_stderr(
    tiny_model: TinyModel, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[dict[str, object]] = []

    def fake_download(url: str, **kwargs: object) -> object:
        calls.append(kwargs)
        print(f'Downloading: "{url}" to /cache/model.ckpt')  # what torch.hub prints
        return torch.load(tiny_model.checkpoint, weights_only=True)

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    detoxify = load_detoxify(Classifier(huggingface_config_path=str(tiny_model.folder)))
    assert detoxify.class_names == list(LABELS)
    assert calls and calls[0]["weights_only"] is True
    captured = capsys.readouterr()
    assert "Downloading" not in captured.out
    assert "Downloading" in captured.err
