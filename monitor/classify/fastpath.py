"""A faster, equivalent forward pass for Detoxify's BERT-family models (original, unbiased, multilingual).

Two savings, both exact up to float rounding. The query, key and value projections run as one
matrix product (one pass over the activations instead of three). The last layer computes
only the first token, the one the classifier head reads: its keys and values still cover
every token, but its query, attention output and feed-forward block run for one row per
comment instead of one per token (about 7% of the work at comment lengths).

The fused projection weights are one tensor whose row slices become the model's own query,
key and value weights, so no weight is held twice and the model's own forward pass still
works. ``fast_forward`` builds the path only for architectures it knows and checks it
against the model's own forward pass on probe inputs; any difference above
``PROBE_TOLERANCE`` and the caller keeps the model's own forward pass.
"""

from __future__ import annotations

import copy
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from monitor.classify.heap import drop_file_pages

log = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = frozenset({"bert", "roberta", "xlm-roberta"})
PROBE_TOLERANCE = 1e-5  # on sigmoid scores; float reordering alone stays near 1e-6
_PROBE_LENGTHS = (3, 9, 17, 40)


class Unsupported(Exception):
    """The model is not one the fast path knows; its own forward pass is used."""


Linear = Callable[[torch.Tensor], torch.Tensor]  # an nn.Linear or its int8 counterpart


@dataclass(frozen=True)
class _Layer:
    qkv: Linear  # [3H, H]: query, key and value rows (views of the model's own weights)
    query: Linear  # the query rows alone (the last layer computes one query per comment)
    kv: Linear  # the key and value rows
    out_proj: Linear
    attention_norm: nn.LayerNorm
    intermediate: Linear
    activation: Callable[[torch.Tensor], torch.Tensor]
    output: Linear
    output_norm: nn.LayerNorm


def _linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    """An ``nn.Linear`` over existing tensors (no copy)."""
    linear = nn.Linear(weight.shape[1], weight.shape[0], device="meta")
    linear.weight = nn.Parameter(weight, requires_grad=False)
    linear.bias = nn.Parameter(bias, requires_grad=False)
    return linear


def int8_linear(linear: nn.Module) -> nn.Module:
    """``linear`` as a dynamically quantised int8 layer (per-channel weights); fp32 kept as is.

    Activations are quantised per batch on the fly, the products accumulate in int32 and the
    result comes back in fp32 (``torch.ao.quantization.quantize_dynamic`` does the same to
    every ``nn.Linear`` of a model).
    """
    import copy
    import warnings

    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    from torch.ao.quantization import per_channel_dynamic_qconfig

    source = copy.copy(linear)  # the qconfig attribute goes on a copy, not the model's layer
    source.qconfig = per_channel_dynamic_qconfig  # type: ignore[assignment]
    with warnings.catch_warnings():  # torch marks its eager quantisation API as deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantised: nn.Module = DynamicLinear.from_float(source)  # type: ignore[no-untyped-call]
    return quantised


def _check_supported(model: nn.Module) -> None:
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise Unsupported(f"model type {model_type!r}")
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        raise Unsupported("a decoder or cross-attention model")
    positions = getattr(config, "position_embedding_type", "absolute")
    if positions != "absolute":
        raise Unsupported(f"position embeddings {positions!r}")
    if getattr(config, "chunk_size_feed_forward", 0):
        raise Unsupported("chunked feed-forward")
    if model.training:
        raise Unsupported("the model is in training mode")


def _fuse_projections(attention: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """One [3H, H] weight whose row slices become the query, key and value weights."""
    parts: tuple[nn.Linear, ...] = (attention.query, attention.key, attention.value)
    with torch.no_grad():
        weight = torch.cat([p.weight for p in parts]).contiguous()
        bias = torch.cat([p.bias for p in parts]).contiguous()
    size = parts[0].weight.shape[0]
    for projection in parts:  # the old weights' file pages, when memory-mapped (heap.py)
        drop_file_pages(projection.weight)
        drop_file_pages(projection.bias)
    for index, projection in enumerate(parts):
        rows = slice(index * size, (index + 1) * size)
        projection.weight = nn.Parameter(weight[rows], requires_grad=False)
        projection.bias = nn.Parameter(bias[rows], requires_grad=False)
    return weight, bias


def _int8_layer(layer: _Layer, *, last: bool) -> _Layer:
    """``layer`` with the matrix products the pass runs in int8.

    Every layer but the last reads the fused ``qkv``; the last reads ``query`` and ``kv``
    (one query per comment). Only those are quantised: the others stay fp32 views, unused.
    """
    if last:
        layer = replace(
            layer,
            query=int8_linear(layer.query),  # type: ignore[arg-type]
            kv=int8_linear(layer.kv),  # type: ignore[arg-type]
        )
    else:
        layer = replace(layer, qkv=int8_linear(layer.qkv))  # type: ignore[arg-type]
    return replace(
        layer,
        out_proj=int8_linear(layer.out_proj),  # type: ignore[arg-type]
        intermediate=int8_linear(layer.intermediate),  # type: ignore[arg-type]
        output=int8_linear(layer.output),  # type: ignore[arg-type]
    )


class FastForward:
    """Logits of a BERT-family sequence classifier, computed with less work."""

    def __init__(self, model: nn.Module) -> None:
        _check_supported(model)
        config: Any = model.config
        self.model_type: str = config.model_type
        base: Any = model.base_model
        self._embeddings: nn.Module = base.embeddings
        self._heads: int = config.num_attention_heads
        self._hidden: int = config.hidden_size
        self._head_size = self._hidden // self._heads
        self._classifier: nn.Module = model.classifier  # type: ignore[assignment]
        pooler = getattr(base, "pooler", None)
        if self.model_type == "bert" and pooler is None:
            raise Unsupported("a BERT model without its pooler")
        self._pooler: Any = pooler if self.model_type == "bert" else None
        self._layers: list[_Layer] = []
        hidden = self._hidden
        for layer in base.encoder.layer:
            attention = layer.attention
            weight, bias = _fuse_projections(attention.self)
            self._layers.append(
                _Layer(
                    qkv=_linear(weight, bias),
                    query=_linear(weight[:hidden], bias[:hidden]),
                    kv=_linear(weight[hidden:], bias[hidden:]),
                    out_proj=attention.output.dense,
                    attention_norm=attention.output.LayerNorm,
                    intermediate=layer.intermediate.dense,
                    activation=layer.intermediate.intermediate_act_fn,
                    output=layer.output.dense,
                    output_norm=layer.output.LayerNorm,
                )
            )
        if not self._layers:
            raise Unsupported("no encoder layers")
        self.precision = "fp32"

    def int8(self) -> FastForward:
        """The same pass with every encoder matrix product in int8 (a new object; fp32 kept).

        Embeddings, layer norms, attention scores, the pooler and the classifier stay fp32:
        they are a small part of the work and the most sensitive to rounding.
        """
        other = copy.copy(self)
        last = len(self._layers) - 1
        other._layers = [
            _int8_layer(layer, last=index == last) for index, layer in enumerate(self._layers)
        ]
        other.precision = "int8"
        for layer in self._layers:  # fp32 weights the int8 pass no longer reads (heap.py)
            for linear in (layer.out_proj, layer.intermediate, layer.output):
                drop_file_pages(linear.weight)  # type: ignore[attr-defined]
        return other

    def _heads_view(self, x: torch.Tensor, batch: int, width: int, parts: int) -> torch.Tensor:
        """[batch * width, parts * H] -> [parts, batch, heads, width, head size]."""
        return x.view(batch, width, parts, self._heads, self._head_size).permute(2, 0, 3, 1, 4)

    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits for a padded batch, as the model's own forward pass would give them."""
        with torch.inference_mode():
            states = self._embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
            batch, width, hidden = states.shape
            keep = attention_mask.bool()[:, None, None, :]  # keys a token may attend to
            x = states.reshape(batch * width, hidden)
            for layer in self._layers[:-1]:
                qkv = self._heads_view(layer.qkv(x), batch, width, 3)
                context = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=keep)
                context = context.transpose(1, 2).reshape(batch * width, hidden)
                attended = layer.attention_norm(layer.out_proj(context) + x)
                x = layer.output_norm(
                    layer.output(layer.activation(layer.intermediate(attended))) + attended
                )
            last = self._layers[-1]
            first = x.view(batch, width, hidden)[:, 0]  # the token the classifier reads
            query = last.query(first).view(batch, 1, self._heads, self._head_size).transpose(1, 2)
            kv = self._heads_view(last.kv(x), batch, width, 2)
            context = F.scaled_dot_product_attention(query, kv[0], kv[1], attn_mask=keep)
            context = context.reshape(batch, hidden)
            attended = last.attention_norm(last.out_proj(context) + first)
            first = last.output_norm(
                last.output(last.activation(last.intermediate(attended))) + attended
            )
            if self._pooler is not None:  # BERT: pooler, then the linear classifier
                logits: torch.Tensor = self._classifier(
                    self._pooler.activation(self._pooler.dense(first))
                )
            else:  # RoBERTa: the classification head reads features[:, 0]
                logits = self._classifier(first[:, None, :])
            return logits


def _probe_inputs(vocab_size: int, *, pad_id: int) -> dict[str, torch.Tensor]:
    """A padded batch of random token ids of several lengths (deterministic)."""
    generator = torch.Generator().manual_seed(1234)
    width = max(_PROBE_LENGTHS)
    ids = torch.full((len(_PROBE_LENGTHS), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    low = min(5, vocab_size - 1)  # skip the first ids (special tokens in BERT vocabularies)
    for row, length in enumerate(_PROBE_LENGTHS):
        ids[row, :length] = torch.randint(low, vocab_size, (length,), generator=generator)
        mask[row, :length] = 1
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "token_type_ids": torch.zeros_like(ids),
    }


_BUILT: weakref.WeakKeyDictionary[nn.Module, FastForward | None] = weakref.WeakKeyDictionary()


def fast_forward(model: nn.Module, *, pad_id: int = 0) -> FastForward | None:
    """The fast path for ``model`` (built and checked once per model), or None."""
    if model not in _BUILT:
        _BUILT[model] = _build(model, pad_id=pad_id)
    return _BUILT[model]


def _build(model: nn.Module, *, pad_id: int) -> FastForward | None:
    try:
        fast = FastForward(model)
    except Unsupported as exc:
        log.debug("toxicity model: the plain forward pass is used (%s)", exc)
        return None
    config: Any = model.config
    inputs = _probe_inputs(int(config.vocab_size), pad_id=pad_id)
    device = next(model.parameters()).device
    inputs = {key: value.to(device) for key, value in inputs.items()}
    with torch.inference_mode():
        expected = torch.sigmoid(model(**inputs)[0])
        got = torch.sigmoid(fast(**inputs))
    difference = float((expected - got).abs().max())
    if got.shape != expected.shape or not difference <= PROBE_TOLERANCE:
        log.warning(
            "toxicity model: the fast forward pass differs by %.2e on the probe; "
            "using the model's own forward pass",
            difference,
        )
        return None
    log.debug("toxicity model: fast forward pass on (probe difference %.1e)", difference)
    return fast
