"""Freed activations go back to the system: the worker's memory does not keep each batch's."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

from monitor.classify import heap
from monitor.classify.pipeline import ClassifierPipeline
from monitor.config_models import Classifier
from tests.classify.classify_support import TinyModel

# In a fresh process: a thread (its own malloc arena, as the scoring threads have) frees an
# 8 MiB block, then allocates and frees 6 MiB; prints the anonymous memory it kept, in MiB.
# glibc raises its mmap threshold to 8 MiB on the first free, so the 6 MiB block comes from
# the arena and stays there after the free, unless the threshold is fixed.
_PROBE = textwrap.dedent(
    """
    import ctypes, sys, threading
    from monitor.classify import heap

    def anon():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    if sys.argv[1] == "fixed":
        assert heap.return_large_blocks()
    kept = []

    def block(size):
        pointer = libc.malloc(size)
        ctypes.memset(pointer, 1, size)  # touched, as activations are
        libc.free(pointer)

    def work():
        block(8 << 20)
        before = anon()
        block(6 << 20)
        kept.append(anon() - before)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    print(kept[0])
    """
)


def _kept_mib(mode: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")
def test_a_freed_large_block_is_given_back_once_the_threshold_is_fixed() -> None:
    assert _kept_mib("fixed") < 1.0
    # the probe can fail: glibc's own behaviour keeps the block
    assert _kept_mib("default") > 4.0


def test_release_free_memory_runs_anywhere() -> None:
    heap.release_free_memory()  # no error, with or without glibc


@pytest.mark.slow
def test_loading_the_model_fixes_the_threshold(
    tiny_model: TinyModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def recorded() -> bool:
        calls.append(1)
        return True

    monkeypatch.setattr(heap, "return_large_blocks", recorded)
    config = Classifier(
        checkpoint=str(tiny_model.checkpoint), huggingface_config_path=str(tiny_model.folder)
    )
    pipeline = ClassifierPipeline(config)
    assert calls == []  # not before the model is wanted
    assert pipeline.load().available
    assert calls == [1]


def _resident_kib(tensor: torch.Tensor) -> int:
    """Resident KiB of the mapping that holds ``tensor`` (/proc/self/smaps)."""
    address = tensor.data_ptr()
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if "-" in head[0] and not head[0].endswith(":"):
            low, high = (int(x, 16) for x in head[0].split("-"))
            inside = low <= address < high
        elif inside and head[0] == "Rss:":
            return int(head[1])
    raise AssertionError("tensor not found in any mapping")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc")
def test_file_pages_of_a_memory_mapped_weight_are_dropped_and_read_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.arange(4 * 1024 * 1024, dtype=torch.float32)}, path)  # 16 MiB
    weight = torch.load(path, mmap=True, weights_only=True)["w"]
    expected = float(weight.sum())  # reads every page
    before = _resident_kib(weight)
    dropped = heap.drop_file_pages(weight)
    assert dropped >= 16 * 1024 * 1024 - 2 * 4096
    assert _resident_kib(weight) <= before - 15 * 1024
    assert float(weight.sum()) == expected  # the same values, read from the file again


def test_heap_memory_is_never_dropped() -> None:
    weight = torch.arange(4 * 1024 * 1024, dtype=torch.float32)
    assert heap.drop_file_pages(weight) == 0
    assert float(weight[-1]) == 4 * 1024 * 1024 - 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc")
def test_building_the_int8_pass_drops_the_fp32_pages_it_replaced(tmp_path: Path) -> None:
    """The fp32 feed-forward weights of a memory-mapped checkpoint leave memory once int8
    replaces them, and come back from the file unchanged if fp32 is asked for again."""
    from transformers import BertConfig, BertForSequenceClassification

    from monitor.classify.fastpath import FastForward

    torch.manual_seed(0)
    sizes: dict[str, Any] = {  # Any: BertConfig takes them as its own keyword types
        "vocab_size": 300,
        "hidden_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 2048,  # 2 MiB per feed-forward matrix: whole pages to drop
        "num_labels": 6,
    }
    config = BertConfig(**sizes)
    path = tmp_path / "model.ckpt"
    torch.save(BertForSequenceClassification(config).state_dict(), path)
    model = BertForSequenceClassification(config)
    model.load_state_dict(torch.load(path, mmap=True, weights_only=True), assign=True)
    model.train(False)
    fast = FastForward(model)
    ids = torch.randint(5, 300, (2, 12), generator=torch.Generator().manual_seed(1))
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    fp32 = fast(**inputs)  # reads every weight: all resident
    layer: Any = model.bert.encoder.layer[0]  # torch types submodules as "Tensor | Module"
    weight: torch.Tensor = layer.intermediate.dense.weight
    before = _resident_kib(weight)
    assert before >= 1900
    fast.int8()
    assert _resident_kib(weight) <= before - 1900
    assert torch.equal(fast(**inputs), fp32)  # read from the file again, the same values
