"""Toxicity scoring throughput: plain one-at-a-time Detoxify.predict vs the pipeline.

    .venv/bin/python bench/classify.py [--n 2000] [--batch-size 32] [--rebuild] [--no-concern]

Builds (once, cached in bench/.cache/) a checkpoint with the exact bert-base-uncased shape
that the 'original' model has (random weights, 30,522-token vocabulary, 12 layers, 768
hidden), offline; generates a realistic mix of school-account comments (median about 25
words, a long tail to about 150); scores every comment both ways, alternating slices so a
busy machine slows all alike; prints comments per second for each (and for sorted batches
run one at a time on all cores, the simpler batching; and for the int8 path), the ratios,
the largest score difference and peak memory (resident set high-water mark per phase);
then the fp32 ceiling of the machine (FLOPs per comment over the measured matrix-multiply
speed) and each mode's share of it. The pipeline is timed
twice: with the toxicity model alone (like for like with plain Detoxify) and as the monitor
runs it by default, with the concern model too (its scores are not in the difference).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may touch the network

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


from monitor.classify.checkpoint import basic_vocab, build_random_bert  # noqa: E402
from monitor.classify.pipeline import ClassifierPipeline  # noqa: E402
from monitor.classify.toxicity import ToxicityModel  # noqa: E402
from monitor.config_models import Classifier, Concern  # noqa: E402

CACHE = REPO / "bench" / ".cache"
BERT_BASE = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
}
VOCAB_SIZE = 30522

OPENERS = [
    "Hi",
    "Hello",
    "Morning all",
    "Hiya",
    "Well done",
    "Thank you",
    "Honestly",
    "Just a quick one",
    "Sorry to ask",
    "Brilliant",
    "Really",
    "Absolutely",
    "Please",
    "Not happy",
]
SENTENCES = {
    "praise": [
        "What a fantastic sports day, the children were amazing and the weather held off.",
        "So proud of all of Year 6, they have worked incredibly hard this year.",
        "Thank you to every member of staff who gave up their weekend for the residential.",
        "The nativity was gorgeous, not a dry eye in the hall.",
        "My daughter came home buzzing about the science week experiments.",
        "Lovely photos, they look like they had a brilliant time at the zoo.",
        "Massive well done to the under twelves netball team on winning the league.",
        "The new library looks incredible, well done to the PTA for all the fundraising.",
    ],
    "question": [
        "What time are the coaches due back from the trip tonight?",
        "Is the school open tomorrow with all the snow?",
        "Does anyone know if it is PE on Monday or Tuesday for Year 4?",
        "Where can I find the uniform list for September?",
        "Could someone let me know what my son needs to bring for the residential?",
        "Any update on when the heating will be fixed in the Year 3 classrooms?",
        "How do we apply for free school meals, I could not find it on the website?",
        "Will the leavers assembly be streamed for grandparents who cannot come?",
    ],
    "complaint": [
        "I have emailed the office three times about the bus pass and nobody has replied.",
        "Really disappointed with how parents evening was organised this year.",
        "The car park at pick up is dangerous and someone is going to get hurt.",
        "Why is my son being punished for the wrong shade of grey trousers?",
        "Nobody told us about the early closure until the kids were already home.",
        "The communication from this school has been terrible all term.",
        "We found out about the trip being cancelled from another parent, not the school.",
    ],
    "abuse": [
        "The head is a clueless muppet and should be sacked.",
        "Whoever runs this page is an absolute idiot.",
        "You lot are a disgrace and the teachers are useless.",
        "Bunch of clowns running this school, pathetic.",
    ],
    "safeguarding": [
        "My son is being bullied every single day and nobody is doing anything.",
        "There is a man hanging around the park near the gates offering the kids vapes.",
        "I think my friend is being hurt at home, she has bruises on her arms.",
        "Some of the year nine boys are sharing pictures of girls on Snapchat.",
        "i cant do this anymore, everyone would be better off without me",
    ],
    "press": [
        "Hi, I am a reporter at the local paper working on a story about the new building.",
        "Could the school provide a statement for our newsdesk before four o'clock today?",
    ],
    "spam": [
        "Earn five hundred pounds a day from home, click the link in my bio.",
        "Want more followers? Check out my page for cheap growth services.",
    ],
}
MIX = {
    "praise": 40,
    "question": 20,
    "complaint": 15,
    "abuse": 8,
    "safeguarding": 7,
    "press": 3,
    "spam": 7,
}
FILLER = [
    "It has been a long week for everyone.",
    "The kids have talked about nothing else since Friday.",
    "We moved here last year and it has been a big change for the whole family.",
    "My eldest went here too and loved every minute of it.",
    "I know the staff are under a lot of pressure at the moment.",
    "To be fair the office are usually really helpful.",
    "Anyway, just wanted to say something.",
    "My youngest starts in reception in September so we are all a bit nervous.",
    "We were stuck in traffic on the ring road for an hour.",
    "Hope everyone has a restful half term.",
]


def make_comments(n: int, seed: int = 7) -> list[str]:
    """``n`` comments: a realistic mix, median about 25 words, a long tail to about 150."""
    rng = random.Random(seed)
    kinds = [k for k, weight in MIX.items() for _ in range(weight)]
    comments = []
    for i in range(n):
        kind = rng.choice(kinds)
        target = max(3, min(150, round(rng.lognormvariate(3.2, 0.7))))
        parts = [rng.choice(OPENERS) + ","] if rng.random() < 0.4 else []
        parts.append(rng.choice(SENTENCES[kind]))
        while sum(len(p.split()) for p in parts) < target:
            parts.append(rng.choice(FILLER if rng.random() < 0.6 else SENTENCES[kind]))
        words = " ".join(parts).split()[:target]
        # a few misspellings and names make the tokenizer split words into pieces
        if rng.random() < 0.3:
            words.insert(
                rng.randrange(len(words) + 1), f"Mrs{chr(65 + i % 26)}{rng.randint(1, 99)}"
            )
        comments.append(" ".join(words))
    return comments


def comment_vocab(extra: Iterable[str] = ()) -> list[str]:
    """A vocabulary holding the comments' words, as the real one holds most English words.

    With only characters and pieces, every word would be split into several tokens and each
    comment would cost the model three or four times what it costs with the real vocabulary.
    """
    words = {
        w.strip(".,!?'").lower() for group in SENTENCES.values() for s in group for w in s.split()
    }
    words |= {w.strip(".,!?'").lower() for s in FILLER + OPENERS for w in s.split()}
    words |= {w.strip(".,!?'").lower() for s in extra for w in s.split()}
    return basic_vocab(sorted(words), size=VOCAB_SIZE)


def build_checkpoint(rebuild: bool) -> tuple[Path, Path]:
    """The cached bert-base-shaped checkpoint and its folder (built offline when missing)."""
    folder = CACHE / "bert-base-random"
    ckpt = folder / "model.ckpt"
    stamp = folder / "built.json"
    wanted = {**BERT_BASE, "vocab": VOCAB_SIZE, "version": 1}
    if (
        not rebuild
        and ckpt.is_file()
        and stamp.is_file()
        and json.loads(stamp.read_text()) == wanted
    ):
        return ckpt, folder
    started = time.perf_counter()
    build_random_bert(folder, vocab=comment_vocab(), classifier_scale=40.0, **BERT_BASE)
    stamp.write_text(json.dumps(wanted))
    print(f"built {ckpt} in {time.perf_counter() - started:.0f} s")
    return ckpt, folder


def reset_peak() -> None:
    """Start a new resident-set high-water mark (Linux)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_mb() -> float:
    """The resident-set high-water mark since the last reset, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def flops_per_comment(config: Any, tokens: list[int]) -> float:
    """Mean multiply-add FLOPs of one comment through the encoder (no padding, full last layer).

    Per token and layer: the four attention projections (4 H^2) and the feed-forward block
    (2 H I), two FLOPs per multiply-add; plus attention scores and mixing (4 n H per token).
    """
    hidden, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_token = 2 * (4 * hidden * hidden + 2 * hidden * inner)
    total = [layers * (n * per_token + 4 * n * n * hidden) for n in tokens]
    return float(statistics.mean(total))


def matmul_gflops(workers: int, *, int8: bool = False, seconds: float = 3.0) -> float:
    """Measured GFLOP/s of bert-base-sized matrix products, one per core at a time."""
    import torch
    from torch.nn import functional as F

    from monitor.classify.fastpath import int8_linear

    m, k, n = 512, 768, 3072  # a 512-token batch through the feed-forward's first layer
    linear = torch.nn.Linear(k, n)
    layer = int8_linear(linear) if int8 else None

    def run(_: int) -> int:
        x = torch.randn(m, k)
        done, end = 0, time.perf_counter() + seconds
        with torch.inference_mode():
            while time.perf_counter() < end:
                if layer is not None:
                    layer(x)
                else:
                    F.linear(x, linear.weight, linear.bias)
                done += 1
        return done

    from concurrent.futures import ThreadPoolExecutor

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            started = time.perf_counter()
            calls = sum(pool.map(run, range(workers)))
            elapsed = time.perf_counter() - started
    finally:
        torch.set_num_threads(previous)
    return 2 * m * k * n * calls / elapsed / 1e9


Scores = list[dict[str, float]]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="comments (default 2000)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--chunk", type=int, default=250, help="comments per assess() call")
    parser.add_argument("--rounds", type=int, default=4, help="alternating slices per mode")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached checkpoint")
    parser.add_argument(
        "--no-concern", action="store_true", help="skip timing the pipeline with the concern model"
    )
    return parser.parse_args()


def _assessed(runner: ClassifierPipeline, texts: list[str], chunk: int) -> Scores:
    """The scores of ``texts`` through a pipeline's assess(), ``chunk`` texts a call."""
    out = []
    for start in range(0, len(texts), chunk):
        for assessment in runner.assess(texts[start : start + chunk]):
            assert assessment.model is not None, "pipeline fell back to rules only"
            out.append(dict(assessment.scores))
    return out


def _timed_rounds(
    comments: list[str], scorers: dict[str, Callable[[list[str]], Scores]], rounds: int
) -> tuple[dict[str, Scores], dict[str, float], dict[str, float]]:
    """Each mode's scores, seconds and peak RSS, over alternating slices of ``comments``."""
    modes = tuple(scorers)
    scores: dict[str, Scores] = {m: [{} for _ in comments] for m in modes}
    seconds = dict.fromkeys(modes, 0.0)
    peaks = dict.fromkeys(modes, 0.0)
    slices = [range(r, len(comments), rounds) for r in range(rounds)]
    for r, indices in enumerate(slices):
        texts = [comments[i] for i in indices]
        for mode, score in scorers.items():
            reset_peak()
            t0 = time.perf_counter()
            out = score(texts)
            seconds[mode] += time.perf_counter() - t0
            peaks[mode] = max(peaks[mode], peak_mb())
            for i, result in zip(indices, out, strict=True):
                scores[mode][i] = result
        done = ", ".join(f"{m} {seconds[m]:.0f} s" for m in modes)
        print(f"  round {r + 1}/{rounds}: {done}; load average {os.getloadavg()[0]:.1f}")
    return scores, seconds, peaks


def _print_modes(
    rate: Callable[[str], float], scores: dict[str, Scores], peaks: dict[str, float]
) -> None:
    """Each mode's rate against plain Detoxify, and how far its scores are from it."""

    def diff(mode: str) -> float:  # over Detoxify's labels
        plain = scores["plain"]
        return max(
            abs(plain[i][k] - scores[mode][i][k]) for i in range(len(plain)) for k in plain[i]
        )

    print()
    print(
        f"plain Detoxify.predict, one at a time:       {rate('plain'):6.1f} comments/s"
        f"  peak RSS {peaks['plain']:.0f} MB"
    )
    print(
        f"sorted batches, one batch at a time:          {rate('intra'):6.1f} comments/s"
        f"  peak RSS {peaks['intra']:.0f} MB  ({rate('intra') / rate('plain'):.2f}x,"
        f" max diff {diff('intra'):.1e})"
    )
    print(
        f"pipeline (rules + sorted batches, per core): {rate('pipeline'):6.1f} comments/s"
        f"  peak RSS {peaks['pipeline']:.0f} MB  ({rate('pipeline') / rate('plain'):.2f}x,"
        f" max diff {diff('pipeline'):.1e})"
    )
    print(
        f"int8 sorted batches, per core (no rules):     {rate('int8'):6.1f} comments/s"
        f"  peak RSS {peaks['int8']:.0f} MB  ({rate('int8') / rate('plain'):.2f}x plain,"
        f" {rate('int8') / rate('pipeline'):.2f}x the fp32 pipeline; max diff {diff('int8'):.1e})"
    )
    if "full" in scores:
        print(
            f"pipeline + concern model (the default):      {rate('full'):6.1f} comments/s"
            f"  peak RSS {peaks['full']:.0f} MB  ({rate('full') / rate('plain'):.2f}x,"
            f" max diff {diff('full'):.1e})"
        )


def _print_ceiling(
    rate: Callable[[str], float],
    modes: Iterable[str],
    workers: int,
    detoxify: Any,
    tokens: list[int],
) -> None:
    """The fp32 matrix-multiply ceiling and each mode's share of it."""
    flops = flops_per_comment(detoxify.model.config, tokens)
    fp32_gflops = matmul_gflops(workers)
    int8_gflops = matmul_gflops(workers, int8=True)
    ceiling = fp32_gflops * 1e9 / flops
    print()
    print(
        f"fp32 ceiling: {flops / 1e9:.2f} GFLOP per comment (mean tokens "
        f"{statistics.mean(tokens):.1f}) over {fp32_gflops:.1f} GFLOP/s measured fp32 matrix "
        f"multiply on {workers} core(s) = {ceiling:.1f} comments/s "
        f"(int8 matrix multiply {int8_gflops:.1f} GOP/s, {int8_gflops / fp32_gflops:.2f}x)"
    )
    shares = ", ".join(f"{m} {rate(m) / ceiling:.0%}" for m in modes)
    print(f"share of the fp32 ceiling: {shares}")


def main() -> int:
    """Run the benchmark and print its figures."""
    args = _arguments()
    ckpt, folder = build_checkpoint(args.rebuild)
    comments = make_comments(args.n)
    config = Classifier(
        checkpoint=str(ckpt),
        huggingface_config_path=str(folder),
        batch_size=args.batch_size,
        precision="fp32",  # the int8 path is timed as its own mode, without the guard's run
    )
    reset_peak()
    started = time.perf_counter()
    pipeline = ClassifierPipeline(config.model_copy(update={"concern": Concern(enabled=False)}))
    full = ClassifierPipeline(config)
    status = pipeline.load()
    if not args.no_concern and not full.load().available:
        print(full.model_status.message())
        return 1
    if not status.available:
        print(status.message())
        return 1
    model = pipeline._model  # the loaded ToxicityModel: its Detoxify is the plain reference
    assert model is not None
    load_s, load_mb = time.perf_counter() - started, peak_mb()
    detoxify = model.detoxify
    tokens = [len(ids) for ids in detoxify.tokenizer(comments, truncation=True)["input_ids"]]
    words = [len(c.split()) for c in comments]
    print(
        f"{len(comments)} comments: words median {statistics.median(words):.0f}, "
        f"max {max(words)}; tokens median {statistics.median(tokens):.0f}, "
        f"mean {statistics.mean(tokens):.1f}, max {max(tokens)}; "
        f"distinct texts {len(set(comments))}"
    )
    print(
        f"model loaded in {load_s:.1f} s, peak RSS {load_mb:.0f} MB; torch threads "
        f"{__import__('torch').get_num_threads()}"
    )

    # the same Detoxify, batched the simpler way: one batch at a time on all cores
    intra = ToxicityModel(detoxify, name="intra-op", batch_size=args.batch_size, workers=1)
    # the same sorted batches per core, with the encoder's matrix products in int8
    int8 = ToxicityModel(detoxify, name="int8", batch_size=args.batch_size)
    int8.use("int8")
    scorers: dict[str, Callable[[list[str]], Scores]] = {
        "plain": lambda texts: [
            {k: float(v) for k, v in detoxify.predict(t).items()} for t in texts
        ],
        "intra": intra.score,
        "pipeline": lambda texts: _assessed(pipeline, texts, args.chunk),
        "int8": int8.score,
    }
    if not args.no_concern:
        scorers["full"] = lambda texts: _assessed(full, texts, args.chunk)
    scores, seconds, peaks = _timed_rounds(comments, scorers, args.rounds)

    def rate(mode: str) -> float:
        return len(comments) / seconds[mode]

    _print_modes(rate, scores, peaks)
    _print_ceiling(rate, scorers, model.workers, detoxify, tokens)
    print(f"load average at the end {os.getloadavg()[0]:.1f} (other processes slow every mode)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
