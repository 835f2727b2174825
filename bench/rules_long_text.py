"""How long the rules take to read a long comment to its end (issue 13: whole text read).

    .venv/bin/python bench/rules_long_text.py [--chars 1000000]

Prints seconds and characters per second for text that repeats (identical windows are read
once) and text that never repeats (every window read), each ending in a phrase the rules
must find, and whether they found it.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitor.classify.engine import RuleEngine  # noqa: E402
from monitor.config_models import School  # noqa: E402

WORDS = [
    "the",
    "school",
    "trip",
    "was",
    "lovely",
    "and",
    "our",
    "year",
    "six",
    "pupils",
    "enjoyed",
    "every",
    "minute",
    "of",
    "the",
    "visit",
    "to",
    "museum",
    "with",
    "friends",
    "teachers",
    "parents",
    "coach",
    "lunch",
    "gallery",
    "dinosaurs",
    "rain",
    "sunshine",
]
ENDING = " go and kill yourself"


def texts(chars: int) -> dict[str, str]:
    rng = random.Random(13)
    unique: list[str] = []
    length = 0
    while length < chars:
        word = rng.choice(WORDS) + rng.choice(("", "s", "ed", "ing", str(rng.randint(0, 999))))
        unique.append(word)
        length += len(word) + 1
    line = "Lovely to see everyone at the fair today. "
    return {
        "repeated": (line * (chars // len(line) + 1))[:chars] + ENDING,
        "never repeats": " ".join(unique)[:chars] + ENDING,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=1_000_000)
    args = parser.parse_args()
    engine = RuleEngine.for_school(School(key="oakfield", name="Oakfield Academy"))
    engine.run("warm up")
    print(f"{'text':<14} {'chars':>9} {'seconds':>8} {'chars/s':>10}  found the ending")
    for name, text in texts(args.chars).items():
        started = time.perf_counter()
        hits = engine.run(text)
        took = time.perf_counter() - started
        found = any(m.rule_id == "SG-SELF-HARM-INCITE" for m, _ in hits)
        print(f"{name:<14} {len(text):>9} {took:>8.2f} {len(text) / took:>10.0f}  {found}")


if __name__ == "__main__":
    main()
