"""Detoxify, loaded once (offline when configured) and scored in length-sorted batches."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import pickle
import sys
import threading
import urllib.error
import weakref
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from monitor.classify.checkpoint import (
    CheckpointError,
    UnsafeCheckpointError,
    checked_info,
    load_checkpoint,
    localised,
)
from monitor.classify.fastpath import FastForward, fast_forward
from monitor.config_models import Classifier

log = logging.getLogger(__name__)

# A batch holds at most this many tokens (count x its longest text). Measured on 2 CPU
# cores with bert-base: 512 beats 256, 1024 and 2048 (the activations stay in cache) and is
# about 25% faster than 32 comments a batch whatever their length; long comments go a few
# at a time, so memory stays flat.
MAX_BATCH_TOKENS = 512
_TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
)
OFFLINE_FIX = (
    "let this server reach github.com and huggingface.co once, or copy a downloaded checkpoint "
    "and its Hugging Face config folder here and set classifier.checkpoint and "
    "classifier.huggingface_config_path (README: 'Offline servers')"
)


@dataclass(frozen=True)
class ModelSpec:
    """A released Detoxify model: its Hugging Face base and how many labels it scores."""

    base: str
    labels: int
    note: str


MODELS: dict[str, ModelSpec] = {
    "original": ModelSpec("bert-base-uncased", 6, "Jigsaw 2018; English; 418 MB"),
    "unbiased": ModelSpec("roberta-base", 16, "Jigsaw 2019, less identity bias; English; 476 MB"),
    "multilingual": ModelSpec("xlm-roberta-base", 16, "7 languages; 1.1 GB"),
    "original-small": ModelSpec("albert-base-v2", 6, "smaller and faster; 46 MB"),
    "unbiased-small": ModelSpec("albert-base-v2", 16, "smaller and faster; 46 MB"),
}


class ModelLoadError(Exception):
    """The model cannot be loaded; ``reason`` says why, ``fix`` what to do."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(f"{reason}. Fix: {fix}")
        self.reason = reason
        self.fix = fix


def describe(config: Classifier) -> str:
    """The configured model in words, e.g. ``detoxify/original``."""
    if config.checkpoint:
        return f"detoxify/{Path(config.checkpoint).name}"
    return f"detoxify/{config.model}"


def _resolve(path: str | None, base_dir: Path | None) -> Path | None:
    if path is None:
        return None
    p = Path(path).expanduser()
    return p if p.is_absolute() or base_dir is None else base_dir / p


def _check_device(device: str) -> None:
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ModelLoadError(
            f"classifier.device {device!r} is not a torch device", "use cpu, cuda or cuda:0"
        ) from exc
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(
            f"classifier.device is {device!r} but this machine has no usable CUDA GPU",
            "set classifier.device: cpu (or install a CUDA build of torch and its driver)",
        )
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError(
            f"classifier.device is {device!r} but MPS is not available here",
            "set classifier.device: cpu",
        )


def _count_labels(config_json: dict[str, Any]) -> int | None:
    if isinstance(config_json.get("id2label"), dict):
        return len(config_json["id2label"])
    value = config_json.get("num_labels")
    return int(value) if isinstance(value, int) else None


def _check_folder(folder: Path, labels: int) -> None:
    """The Hugging Face folder has a config with ``labels`` labels and tokenizer files."""
    if not folder.is_dir():
        raise ModelLoadError(
            f"classifier.huggingface_config_path {folder} is not a folder",
            "point it at the folder holding config.json and the tokenizer files",
        )
    config_file = folder / "config.json"
    try:
        config_json = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"{config_file} cannot be read ({exc})",
            "copy config.json from the model's Hugging Face folder",
        ) from exc
    found = _count_labels(config_json)
    if found != labels:
        # with a local folder transformers does not apply num_labels: config.json must carry it
        raise ModelLoadError(
            f"{config_file} declares {found} labels but the checkpoint scores {labels}",
            f'set "num_labels": {labels} (and an id2label with {labels} entries) in config.json, '
            f"e.g. AutoConfig.from_pretrained(base, num_labels={labels}).save_pretrained(folder)",
        )
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        raise ModelLoadError(
            f"{folder} has no tokenizer files ({', '.join(_TOKENIZER_FILES)})",
            "save the tokenizer there: AutoTokenizer.from_pretrained(base).save_pretrained(folder)",
        )


def _offline_env_hint() -> str | None:
    """A hint when the Hugging Face hub may try the network at every start."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() not in ("1", "true", "yes"):
        return "and set HF_HUB_OFFLINE=1 so a server without internet skips slow retries"
    return None


def _translate(exc: BaseException, config: Classifier) -> ModelLoadError:
    """A clear cause and fix for whatever loading raised."""
    text = str(exc)
    if isinstance(exc, ModelLoadError):
        return exc
    if isinstance(exc, UnsafeCheckpointError):
        return ModelLoadError(
            f"the checkpoint was refused: {text[:300]}",
            "use a checkpoint from the model's publisher (a Detoxify release holds only "
            "tensors and plain data)",
        )
    if isinstance(exc, urllib.error.URLError | ConnectionError) or (
        isinstance(exc, OSError)
        and any(s in text for s in ("connect", "offline", "Name or service", "resolve"))
    ):
        what = f"the Detoxify {config.model!r} model" if not config.checkpoint else "its config"
        hint = _offline_env_hint()
        fix = OFFLINE_FIX + (f"; {hint}" if hint else "")
        return ModelLoadError(f"cannot download {what} (no network?): {text[:200]}", fix)
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return ModelLoadError(
            "not enough memory to load the model",
            "free memory, or use a smaller model (classifier.model: original-small)",
        )
    if isinstance(exc, CheckpointError | pickle.UnpicklingError | zipfile.BadZipFile | EOFError):
        return ModelLoadError(
            f"the checkpoint is damaged or not a Detoxify checkpoint: {text[:200]}",
            "download or copy the checkpoint again",
        )
    if "size mismatch" in text or "ignore_mismatched_sizes" in text:
        return ModelLoadError(
            "the checkpoint does not fit the Hugging Face config (layer sizes or labels differ)",
            "use the config folder of the checkpoint's own base model, with its number of labels",
        )
    if isinstance(exc, ImportError):
        return ModelLoadError(f"a package is missing: {text}", "reinstall: pip install -e .")
    return ModelLoadError(
        f"unexpected {type(exc).__name__} loading the model: {text[:300]}",
        "check the classifier settings; the debug log has the traceback",
    )


# Detoxify's own names for three labels of the original model.
_RENAMED = {
    "toxic": "toxicity",
    "identity_hate": "identity_attack",
    "severe_toxic": "severe_toxicity",
}


def _download(model: str, device: str) -> dict[str, Any]:
    """The released checkpoint for ``model`` (cached by torch), tensors and plain data only.

    torch's download prints its progress line to standard output: it goes to standard error
    here, so output that scripts read (``monitor classify --json``) stays clean.
    """
    from detoxify.detoxify import MODEL_URLS

    try:
        with contextlib.redirect_stdout(sys.stderr):
            loaded = torch.hub.load_state_dict_from_url(
                MODEL_URLS[model], map_location=device, weights_only=True
            )
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(
            f"the downloaded {model!r} checkpoint holds Python objects other than tensors and "
            f"plain data, so it was refused: {str(exc).splitlines()[-1][:200]}"
        ) from exc
    if not isinstance(loaded, dict):
        raise CheckpointError(f"the downloaded {model!r} checkpoint is not a checkpoint dict")
    checked_info(Path(MODEL_URLS[model]), loaded)
    return loaded


def _build_detoxify(loaded: dict[str, Any], *, device: str, folder: Path | None) -> Any:
    """A ``detoxify.Detoxify`` from a checkpoint already read safely (as its constructor would)."""
    from detoxify import Detoxify  # here: importing transformers takes seconds
    from detoxify.detoxify import get_model_and_tokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # no "Loading weights" bars in the worker's output
    classes = [str(c) for c in loaded["config"]["dataset"]["args"]["classes"]]
    with contextlib.redirect_stdout(sys.stderr):
        model, tokenizer = get_model_and_tokenizer(
            **loaded["config"]["arch"]["args"],
            state_dict=loaded["state_dict"],
            huggingface_config_path=str(folder) if folder is not None else None,
        )
    detoxify = Detoxify.__new__(Detoxify)  # its __init__ would torch.load(weights_only=False)
    detoxify.model = model.to(device)
    detoxify.tokenizer = tokenizer
    detoxify.class_names = [_RENAMED.get(c, c) for c in classes]
    detoxify.device = device
    return detoxify


def load_detoxify(config: Classifier, *, base_dir: Path | None = None) -> Any:
    """A ``detoxify.Detoxify`` for ``config``, offline when checkpoint and folder are set.

    The checkpoint is read with ``torch.load(weights_only=True)`` (never as Detoxify reads it,
    which runs whatever a crafted file holds). Raises ``ModelLoadError`` naming the cause and
    the fix.
    """
    try:
        _check_device(config.device)
        checkpoint = _resolve(config.checkpoint, base_dir)
        folder = _resolve(config.huggingface_config_path, base_dir)
        if checkpoint is not None:
            if not checkpoint.is_file():
                raise ModelLoadError(
                    f"classifier.checkpoint {checkpoint} does not exist",
                    "fix the path, or remove checkpoint to download the model on first use",
                )
            loaded = load_checkpoint(checkpoint)
        else:
            if folder is not None:
                _check_folder(folder, MODELS[config.model].labels)
            loaded = _download(config.model, config.device)
        if folder is not None:
            _check_folder(
                folder, checked_info(checkpoint or Path(config.model), loaded).num_classes
            )
            localised(loaded, folder)
        return _build_detoxify(loaded, device=config.device, folder=folder)
    except Exception as exc:
        log.debug("loading the toxicity model failed", exc_info=True)
        raise _translate(exc, config) from exc


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """One long-lived pool per size: the same threads score every batch.

    A new pool per call meant new threads, and glibc gives new threads new malloc arenas:
    the activations freed in each were kept by the process, and the worker's memory grew
    with every burst (see the README's memory figures).
    """
    with _POOLS_LOCK:
        if workers not in _POOLS:
            # each thread sets its own thread count (OpenMP and MKL keep it per thread)
            _POOLS[workers] = ThreadPoolExecutor(
                workers,
                thread_name_prefix="toxicity",
                initializer=torch.set_num_threads,
                initargs=(1,),
            )
        return _POOLS[workers]


_INT8: weakref.WeakKeyDictionary[Any, Callable[..., torch.Tensor]] = weakref.WeakKeyDictionary()


def quantize_linear_layers(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with every ``nn.Linear`` dynamically quantised to int8 (per-channel), in place."""
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch marks its eager quantisation API as deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantised: torch.nn.Module = quantize_dynamic(  # type: ignore[no-untyped-call]
            model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True
        )
    return quantised


def fingerprint(config: Classifier, *, base_dir: Path | None = None) -> str:
    """SHA-256 of the checkpoint the configuration loads (the downloaded one when not set)."""
    from monitor.classify.concern import sha256_of

    path = _resolve(config.checkpoint, base_dir)
    if path is None:
        from detoxify.detoxify import MODEL_URLS

        name = MODEL_URLS[config.model].rsplit("/", 1)[-1]
        path = Path(torch.hub.get_dir()) / "checkpoints" / name
    return sha256_of(path)


class ToxicityModel:
    """A loaded Detoxify model that scores many texts at once, exactly as ``predict`` would."""

    def __init__(
        self,
        detoxify: Any,
        *,
        name: str,
        batch_size: int = 32,
        max_batch_tokens: int = MAX_BATCH_TOKENS,
        workers: int | None = None,
        fast_path: bool = True,
    ) -> None:
        self.detoxify = detoxify
        self.name = name
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        on_cpu = torch.device(detoxify.device).type == "cpu"
        self.workers = (
            max(1, torch.get_num_threads()) if workers is None and on_cpu else workers or 1
        )
        self.labels: tuple[str, ...] = tuple(detoxify.class_names)
        tokenizer = detoxify.tokenizer
        limit = getattr(detoxify.model.config, "max_position_embeddings", 512)
        if tokenizer.model_max_length > limit:
            # no model_max_length in tokenizer_config.json: long texts would crash the model
            tokenizer.model_max_length = min(512, limit)
        if detoxify.model.config.num_labels != len(self.labels):
            raise ModelLoadError(
                f"the model scores {detoxify.model.config.num_labels} labels but the checkpoint "
                f"names {len(self.labels)}",
                "use the config.json of the checkpoint's base with its number of labels",
            )
        detoxify.model.eval()
        self.fast: FastForward | None = (
            fast_forward(detoxify.model, pad_id=tokenizer.pad_token_id or 0) if fast_path else None
        )
        self.rows_scored = 0  # texts the model has run (after identical texts are merged)
        self.precision = "fp32"  # what score() runs: "fp32" or "int8" (see precision.py)

    def int8_forward(self) -> Callable[..., torch.Tensor]:
        """The int8 forward pass (built once per loaded model; the fp32 one is kept)."""
        model = self.detoxify.model
        if model not in _INT8:
            if self.fast is not None:
                _INT8[model] = self.fast.int8()
            else:  # a model the fast path does not know: quantise its own layers
                quantised = quantize_linear_layers(copy.deepcopy(model))
                _INT8[model] = lambda **inputs: quantised(**inputs)[0]
        return _INT8[model]

    def use(self, precision: str) -> None:
        """Score in ``precision`` from now on (``fp32`` or ``int8``)."""
        if precision not in ("fp32", "int8"):
            raise ValueError(f"unknown precision {precision!r}")
        if precision == "int8":
            self.int8_forward()
        self.precision = precision

    @classmethod
    def load(cls, config: Classifier, *, base_dir: Path | None = None) -> ToxicityModel:
        """Load the configured model; raises ``ModelLoadError``."""
        detoxify = load_detoxify(config, base_dir=base_dir)
        return cls(detoxify, name=describe(config), batch_size=config.batch_size)

    def predict_one(self, text: str) -> dict[str, float]:
        """Plain ``Detoxify.predict`` on one text (the reference the batches must equal)."""
        return {k: float(v) for k, v in self.detoxify.predict(text).items()}

    def _batches(self, order: Sequence[int], lengths: Sequence[int]) -> Iterator[list[int]]:
        batch: list[int] = []
        for index in order:
            longest = max(lengths[index], max((lengths[i] for i in batch), default=0))
            if batch and (
                len(batch) >= self.batch_size or longest * (len(batch) + 1) > self.max_batch_tokens
            ):
                yield batch
                batch = []
            batch.append(index)
        if batch:
            yield batch

    def _run_all(
        self,
        run: Callable[[list[int]], tuple[list[int], torch.Tensor]],
        batches: list[list[int]],
    ) -> Iterable[tuple[list[int], torch.Tensor]]:
        """Run the batches; on several CPU cores, one batch per core at a time.

        A batch per core with one thread each keeps every core busy on its own matrices;
        splitting each small batch across cores spends much of the time waiting at the
        threads' meeting points, and far more when another process takes a core.
        """
        workers = min(self.workers, len(batches))
        if workers <= 1:
            return [run(batch) for batch in batches]
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return list(_pool(self.workers).map(run, batches))
        finally:
            torch.set_num_threads(previous)

    def score(
        self, texts: Sequence[str], *, precision: str | None = None
    ) -> list[dict[str, float]]:
        """Scores for each text, in input order (identical texts are scored once).

        ``precision``: ``fp32`` or ``int8`` for this call (default: ``self.precision``).
        """
        if not texts:
            return []
        unique: dict[str, int] = {}
        slots = [unique.setdefault(text, len(unique)) for text in texts]
        distinct = list(unique)
        tokenizer = self.detoxify.tokenizer
        model = self.detoxify.model
        encoded = tokenizer(distinct, truncation=True, padding=False)
        keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in encoded]
        lengths = [len(ids) for ids in encoded["input_ids"]]
        # length-sorted: each batch pads only to near its own length
        order = sorted(range(len(distinct)), key=lengths.__getitem__)
        pad_values = {
            "input_ids": tokenizer.pad_token_id or 0,
            "token_type_ids": getattr(tokenizer, "pad_token_type_id", 0),
            "attention_mask": 0,
        }
        results = torch.empty(len(distinct), len(self.labels))
        if (precision or self.precision) == "int8":
            forward = self.int8_forward()
        else:
            forward = self.fast or (lambda **inputs: model(**inputs)[0])

        def run(batch: list[int]) -> tuple[list[int], torch.Tensor]:
            width = max(lengths[i] for i in batch)
            inputs = {
                key: torch.tensor(
                    [encoded[key][i] + [pad_values[key]] * (width - lengths[i]) for i in batch],
                    dtype=torch.long,
                    device=model.device,
                )
                for key in keys
            }
            with torch.inference_mode():
                logits = forward(**inputs)
            self.rows_scored += len(batch)
            return batch, torch.sigmoid(logits).float().cpu()

        batches = list(self._batches(order, lengths))
        for batch, probs in self._run_all(run, batches):
            results[batch] = probs
        rows: list[list[float]] = results.tolist()
        return [dict(zip(self.labels, rows[slot], strict=True)) for slot in slots]
