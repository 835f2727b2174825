"""The worker's memory with the models loaded, stage by stage, in about a minute.

``bench/load.py`` measures the peak of a real worker over a 5,000-comment burst (about 15
minutes here). This runs what dominates that peak in one process: the classifier pipeline
as the worker builds it (the bert-base-shaped checkpoint of ``bench/load.py`` through
``classifier.checkpoint`` and ``huggingface_config_path``, plus the concern model), then
``assess`` on the burst's comments in the worker's batches of 128 (``monitor/jobs/assess.py``).

    .venv/bin/python -m bench.worker_memory --comments 640

Prints the resident memory after each stage (``/proc/self/status``: VmRSS, its anonymous and
file-backed parts, and the high-water mark VmHWM) in MiB and in decimal MB.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

MIB = 1024 * 1024


def status() -> dict[str, int]:
    """VmHWM, VmRSS, RssAnon and RssFile of this process, in bytes."""
    wanted = ("VmHWM", "VmRSS", "RssAnon", "RssFile")
    out: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in wanted:
            out[key] = int(value.split()[0]) * 1024
    return out


def report(stage: str) -> dict[str, int]:
    """Print the memory figures after ``stage``; returns them."""
    figures = status()
    print(
        f"{stage:<34} rss {figures['VmRSS'] / MIB:7.0f} MiB "
        f"(anon {figures['RssAnon'] / MIB:5.0f}, file {figures['RssFile'] / MIB:5.0f})  "
        f"peak {figures['VmHWM'] / MIB:7.0f} MiB = {figures['VmHWM'] / 1e9:.3f} GB",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=640)
    parser.add_argument("--batch", type=int, default=128, help="texts per assess call")
    parser.add_argument("--no-concern", action="store_true")
    args = parser.parse_args()
    report("start")
    import torch  # noqa: F401 - measured on its own

    from bench.classify import make_comments
    from bench.load import ABUSE, load_checkpoint
    from monitor.classify.pipeline import ClassifierPipeline
    from monitor.config_models import Classifier

    report("imports")
    checkpoint, folder = load_checkpoint()
    config = Classifier.model_validate(
        {
            "checkpoint": str(checkpoint),
            "huggingface_config_path": str(folder),
            "batch_size": 32,
            "precision": "fp32",
            "concern": {"enabled": not args.no_concern},
        }
    )
    pipeline = ClassifierPipeline(config)
    began = time.monotonic()
    loaded = pipeline.load()
    report(f"models loaded ({time.monotonic() - began:.0f} s)")
    if loaded.state.name != "LOADED":
        raise SystemExit(f"the models did not load: {loaded.message()}")
    texts = make_comments(args.comments)
    texts = [ABUSE.format(n=n) if n % 10 == 0 else text for n, text in enumerate(texts)]
    began = time.monotonic()
    for start in range(0, len(texts), args.batch):
        pipeline.assess(texts[start : start + args.batch])
    report(f"{len(texts)} comments assessed ({time.monotonic() - began:.0f} s)")


if __name__ == "__main__":
    main()
