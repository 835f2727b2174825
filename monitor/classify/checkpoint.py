"""Detoxify checkpoint files: read their header, point them at a local folder, build small ones.

A checkpoint is ``torch.save({"config": ..., "state_dict": ...})`` where ``config.arch.args``
holds ``num_classes``, ``model_type`` (a Hugging Face name or folder), ``model_name`` and
``tokenizer_name``, and ``config.dataset.args.classes`` the label names. The Hugging Face
folder beside it holds ``config.json`` (with the number of labels), the tokenizer files and
``tokenizer_config.json`` (with ``model_max_length``).
"""

from __future__ import annotations

import json
import pickle
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

# The label names of the released checkpoints, before Detoxify renames three of them.
ORIGINAL_CLASSES = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
UNBIASED_CLASSES = (
    "toxicity",
    "severe_toxicity",
    "obscene",
    "identity_attack",
    "insult",
    "threat",
    "sexual_explicit",
    "male",
    "female",
    "homosexual_gay_or_lesbian",
    "christian",
    "jewish",
    "muslim",
    "black",
    "white",
    "psychiatric_or_mental_illness",
)
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


class CheckpointError(ValueError):
    """A file that is not a usable Detoxify checkpoint; the message says why."""


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about itself."""

    path: Path
    model_type: str
    model_name: str
    tokenizer_name: str
    num_classes: int
    classes: tuple[str, ...]


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint holding Python objects other than tensors and plain data: refused."""


def _load(path: Path) -> dict[str, Any]:
    """The checkpoint's contents, read with ``weights_only=True``.

    A checkpoint is a pickle: read with ``weights_only=False`` (as Detoxify itself does),
    a crafted file runs any code it likes. Only tensors and plain data (dicts, lists,
    strings, numbers) are accepted; anything else is refused with ``UnsafeCheckpointError``.
    """
    try:
        try:
            # mmap: reading the header of a 400 MB checkpoint should not read 400 MB
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:
            loaded = torch.load(path, map_location="cpu", weights_only=True)  # legacy format
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(
            f"{path} holds Python objects other than tensors and plain data, so it was refused "
            f"(loading it could run code): {str(exc).splitlines()[-1][:200]}"
        ) from exc
    return _checked_dict(path, loaded)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path`` (tensors and plain data only), header checked."""
    path = Path(path)
    try:
        loaded = _load(path)
        checked_info(path, loaded)
    except (CheckpointError, OSError, MemoryError):
        raise
    except Exception as exc:  # pickle, zip and torch all raise their own kinds here
        raise CheckpointError(f"{path} cannot be read as a checkpoint: {exc}") from exc
    return loaded


def _checked_dict(path: Path | str, loaded: object) -> dict[str, Any]:
    if not isinstance(loaded, dict):
        raise CheckpointError(f"{path} holds a {type(loaded).__name__}, not a checkpoint dict")
    return loaded


def checked_info(path: Path, loaded: dict[str, Any]) -> CheckpointInfo:
    """What the loaded checkpoint says about itself; raises ``CheckpointError`` if malformed."""
    try:
        args = loaded["config"]["arch"]["args"]
        classes = tuple(str(c) for c in loaded["config"]["dataset"]["args"]["classes"])
        info = CheckpointInfo(
            path=path,
            model_type=str(args["model_type"]),
            model_name=str(args["model_name"]),
            tokenizer_name=str(args["tokenizer_name"]),
            num_classes=int(args["num_classes"]),
            classes=classes,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is not a Detoxify checkpoint (missing config field {exc})"
        ) from exc
    if "state_dict" not in loaded:
        raise CheckpointError(f"{path} is not a Detoxify checkpoint (no state_dict)")
    if info.num_classes != len(info.classes):
        raise CheckpointError(
            f"{path}: num_classes {info.num_classes} but {len(info.classes)} class names"
        )
    return info


def read_checkpoint_info(path: str | Path) -> CheckpointInfo:
    """The header of the checkpoint at ``path``; raises ``CheckpointError`` or ``OSError``."""
    path = Path(path)
    try:
        return checked_info(path, _load(path))
    except CheckpointError:
        raise
    except (OSError, MemoryError):
        raise
    except Exception as exc:  # pickle, zip and torch all raise their own kinds here
        raise CheckpointError(f"{path} cannot be read as a checkpoint: {exc}") from exc


def localised(loaded: dict[str, Any], folder: str | Path) -> bool:
    """Point the loaded checkpoint's ``model_type`` at ``folder``; False if it already was.

    Detoxify reads the Hugging Face config named by ``model_type`` even when given a local
    folder, which needs the network for a name such as ``bert-base-uncased``.
    """
    folder = Path(folder)
    args = loaded["config"]["arch"]["args"]
    declared = Path(str(args["model_type"]))
    if declared.is_dir() and declared.resolve() == folder.resolve():
        return False
    args["model_type"] = str(folder.resolve())
    return True


def write_checkpoint(
    path: str | Path,
    *,
    state_dict: dict[str, Any],
    classes: Sequence[str],
    model_type: str,
    model_name: str = "BertForSequenceClassification",
    tokenizer_name: str = "BertTokenizer",
) -> Path:
    """Save ``state_dict`` as a Detoxify checkpoint."""
    path = Path(path)
    checkpoint = {
        "config": {
            "arch": {
                "args": {
                    "num_classes": len(classes),
                    "model_type": model_type,
                    "model_name": model_name,
                    "tokenizer_name": tokenizer_name,
                }
            },
            "dataset": {"args": {"classes": list(classes)}},
        },
        "state_dict": state_dict,
    }
    torch.save(checkpoint, path)
    return path


def basic_vocab(words: Iterable[str], *, size: int | None = None) -> list[str]:
    """A WordPiece vocabulary: special tokens, characters, ``##`` characters, then ``words``.

    With ``size``, it is filled up to that many entries with ``##`` pieces, as the real
    30,522-entry vocabulary is.
    """
    chars = string.ascii_lowercase + string.digits + string.punctuation
    vocab: dict[str, None] = dict.fromkeys(SPECIAL_TOKENS)
    vocab.update(dict.fromkeys(chars))
    vocab.update(dict.fromkeys("##" + c for c in string.ascii_lowercase + string.digits))
    vocab.update(dict.fromkeys(w.lower() for w in words if w.strip()))
    if size is not None:
        letters = string.ascii_lowercase
        n = 0
        while len(vocab) < size:  # "##aa", "##ab", ... then three letters, and so on
            piece, m = "", n
            while True:
                piece = letters[m % 26] + piece
                m = m // 26 - 1
                if m < 0:
                    break
            vocab.setdefault(f"##{piece}", None)
            n += 1
        vocab = dict.fromkeys(list(vocab)[:size])
    return list(vocab)


def build_random_bert(  # noqa: PLR0913 - the model's hyper-parameters, keyword-only
    folder: str | Path,
    *,
    vocab: Sequence[str],
    hidden_size: int = 32,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 2,
    intermediate_size: int = 64,
    classes: Sequence[str] = ORIGINAL_CLASSES,
    seed: int = 0,
    classifier_scale: float = 1.0,
    classifier_bias: float = 0.0,
    model_type: str | None = None,
) -> Path:
    """A BERT checkpoint with random weights in Detoxify's format, for tests and benchmarks.

    Writes ``folder/model.ckpt`` and the Hugging Face files beside it (``folder`` is the
    ``huggingface_config_path``); ``model_type`` defaults to the folder itself.
    ``classifier_scale`` spreads the scores (random heads otherwise give about 0.5);
    ``classifier_bias`` moves every logit (e.g. -6: scores near 0, as ordinary comments get).
    Returns the checkpoint path.
    """
    import transformers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 512}
        ),
        encoding="utf-8",
    )
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=intermediate_size,
    )
    config.num_labels = len(classes)  # config.json must carry it (see the module docstring)
    config.save_pretrained(folder)
    torch.manual_seed(seed)
    model = transformers.BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.mul_(classifier_scale)
        model.classifier.bias.fill_(classifier_bias)
    return write_checkpoint(
        folder / "model.ckpt",
        state_dict=model.state_dict(),
        classes=classes,
        model_type=model_type or str(folder.resolve()),
    )
