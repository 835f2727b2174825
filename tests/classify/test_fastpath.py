"""The fast forward pass gives the model's own logits, for BERT and RoBERTa, or steps aside."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import pytest
import torch
from transformers import (
    AlbertConfig,
    AlbertForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from monitor.classify.fastpath import PROBE_TOLERANCE, FastForward, Unsupported, fast_forward
from monitor.classify.toxicity import ToxicityModel
from tests.classify.classify_support import TinyModel

Model = TypeVar("Model", bound=torch.nn.Module)

SMALL: dict[str, Any] = {  # Any: each config takes them as its own keyword types
    "vocab_size": 300,
    "hidden_size": 32,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "num_labels": 6,
}


def _batch(pad_id: int, lengths: tuple[int, ...] = (2, 5, 11, 30)) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    ids = torch.full((len(lengths), max(lengths)), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(5, SMALL["vocab_size"], (length,), generator=generator)
        mask[row, :length] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def _scaled(model: Model) -> Model:
    """Spread the random classifier's logits so a wrong token or layer shows in the scores."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module.out_features == SMALL["num_labels"]:
                module.weight.mul_(40.0)
    return _evaluating(model)


def _evaluating(model: Model) -> Model:
    """``model.eval()``, typed (transformers leaves its models' ``eval`` untyped)."""
    model.train(False)
    return model


@pytest.fixture
def bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    return _scaled(BertForSequenceClassification(BertConfig(**SMALL)))


@pytest.fixture
def roberta() -> RobertaForSequenceClassification:
    torch.manual_seed(0)
    config = RobertaConfig(**SMALL, pad_token_id=1, max_position_embeddings=64, type_vocab_size=1)
    return _scaled(RobertaForSequenceClassification(config))


@pytest.mark.parametrize(("name", "pad_id"), [("bert", 0), ("roberta", 1)])
def test_fast_logits_equal_the_models_own(
    name: str, pad_id: int, request: pytest.FixtureRequest
) -> None:
    model = request.getfixturevalue(name)
    batch = _batch(pad_id)
    with torch.inference_mode():
        expected = torch.sigmoid(model(**batch)[0])
    fast = fast_forward(model, pad_id=pad_id)
    assert isinstance(fast, FastForward)
    got = torch.sigmoid(fast(**batch))
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) <= PROBE_TOLERANCE
    assert float(expected.std()) > 0.05  # the scores really differ between the rows


def test_padding_never_changes_a_comments_scores(bert: BertForSequenceClassification) -> None:
    fast = fast_forward(bert)
    assert fast is not None
    alone = _batch(0, lengths=(11,))
    padded = _batch(0, lengths=(11, 30))  # the same first row, padded to 30 tokens
    assert torch.equal(alone["input_ids"][0], padded["input_ids"][0, :11])
    single, batched = torch.sigmoid(fast(**alone)), torch.sigmoid(fast(**padded))
    assert float((single[0] - batched[0]).abs().max()) <= PROBE_TOLERANCE


def test_the_model_keeps_one_copy_of_its_weights(bert: BertForSequenceClassification) -> None:
    fast = fast_forward(bert)
    assert fast is not None
    # Any: torch types a submodule reached by attribute as "Tensor | Module"
    attention: Any = bert.bert.encoder.layer[0].attention
    attention = attention.self
    layer: Any = fast._layers[0]
    fused = layer.qkv.weight
    # query, key and value are row slices of the fused tensor: same memory, nothing copied
    assert attention.query.weight.data_ptr() == fused.data_ptr()
    assert attention.value.weight.data_ptr() == fused[2 * SMALL["hidden_size"] :].data_ptr()
    assert fast_forward(bert) is fast  # built and checked once per model


def test_models_it_does_not_know_use_their_own_forward() -> None:
    albert = _evaluating(AlbertForSequenceClassification(AlbertConfig(**SMALL, embedding_size=16)))
    with pytest.raises(Unsupported, match="albert"):
        FastForward(albert)
    assert fast_forward(albert) is None
    chunked = BertForSequenceClassification(BertConfig(**SMALL, chunk_size_feed_forward=4))
    with pytest.raises(Unsupported, match="chunked"):
        FastForward(_evaluating(chunked))


class _Drifting(BertForSequenceClassification):  # type: ignore[no-untyped-call]
    """A model whose own forward pass differs from what its layers compute (a future change)."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        output = super().forward(*args, **kwargs)
        output.logits = output.logits + 0.01
        return output


def test_a_fast_path_that_disagrees_on_the_probe_is_not_used(
    caplog: pytest.LogCaptureFixture,
) -> None:
    torch.manual_seed(0)
    model = _evaluating(_Drifting(BertConfig(**SMALL)))
    with caplog.at_level(logging.WARNING, logger="monitor.classify.fastpath"):
        assert fast_forward(model) is None
    assert "using the model's own forward pass" in caplog.text


def test_the_detoxify_wrapper_takes_the_fast_path(tiny_model: TinyModel) -> None:
    from monitor.classify.toxicity import load_detoxify
    from monitor.config_models import Classifier

    detoxify = load_detoxify(
        Classifier(
            checkpoint=str(tiny_model.checkpoint), huggingface_config_path=str(tiny_model.folder)
        )
    )
    fast = ToxicityModel(detoxify, name="fast")
    plain = ToxicityModel(detoxify, name="plain", fast_path=False)
    assert fast.fast is not None and plain.fast is None
    texts = ["what time is pick up", "you are all useless " * 12, "ok", "Thank you so much!"]
    for a, b in zip(fast.score(texts), plain.score(texts), strict=True):
        assert a.keys() == b.keys()
        assert all(abs(a[k] - b[k]) <= PROBE_TOLERANCE for k in a)


def test_int8_quantises_only_the_products_the_pass_runs(
    bert: BertForSequenceClassification,
) -> None:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    fast = fast_forward(bert)
    assert fast is not None
    batch = _batch(0)
    fp32_before = fast(**batch)
    int8 = fast.int8()
    *inner, last = int8._layers
    for layer in inner:  # the fused product; the last layer's one-query parts stay fp32 views
        assert isinstance(layer.qkv, DynamicLinear)
        assert not isinstance(layer.query, DynamicLinear)
        assert not isinstance(layer.kv, DynamicLinear)
    assert isinstance(last.query, DynamicLinear) and isinstance(last.kv, DynamicLinear)
    assert not isinstance(last.qkv, DynamicLinear)
    for layer in int8._layers:
        for linear in (layer.out_proj, layer.intermediate, layer.output):
            assert isinstance(linear, DynamicLinear)
    expected = torch.sigmoid(fp32_before)
    assert float((torch.sigmoid(int8(**batch)) - expected).abs().max()) < 0.1
    assert torch.equal(fast(**batch), fp32_before)  # the fp32 pass is untouched
