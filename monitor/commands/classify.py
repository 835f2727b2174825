"""``monitor classify TEXT... [--file F] [--json]``: assess texts as the monitor would."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from monitor.classify.assessment import Assessment
from monitor.classify.engine import combine
from monitor.classify.pipeline import ClassifierPipeline
from monitor.config_models import Classifier, School
from monitor.display import console as terminal
from monitor.display import terminal_text

SHOWN_CHARS = 160
SCORES_SHOWN = 3


def _printable(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` safe for a terminal (shown through rich ``Text``, so no markup), cut to ``limit``."""
    return terminal_text(text, markup=False, limit=limit)


def _read_texts(texts: list[str] | None, file: Path | None) -> list[str]:
    out = list(texts or [])
    if file is not None:
        try:
            raw = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise typer.BadParameter(f"cannot read {file}: {exc}", param_hint="--file") from exc
        out.extend(line for line in raw.splitlines() if line.strip())
    return out


def _table(texts: list[str], assessments: list[Assessment]) -> Table:
    table = Table(show_lines=True)
    for column in ("#", "text", "severity", "categories", "top scores", "rules (matched)"):
        table.add_column(column, overflow="fold")
    for number, (text, a) in enumerate(zip(texts, assessments, strict=True), 1):
        top = sorted(a.scores.items(), key=lambda kv: -kv[1])[:SCORES_SHOWN]
        scores = ", ".join(f"{k} {v:.2f}" for k, v in top) if a.scores else "unscored"
        rules = "\n".join(
            f"{m.rule_id}: {_printable(m.matched, 40)!r}"
            if m.matched
            else f"{m.rule_id}: {m.reason}"
            for m in a.matches
        )
        table.add_row(
            str(number),
            Text(_printable(text)),
            a.severity.value,
            ", ".join(sorted(c.value for c in a.categories)) or "-",
            scores,
            Text(rules or "-"),
        )
    return table


def classify(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to assess.")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="One text a line ('-': standard input).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Configuration file (its classifier and schools)."),
    ] = None,
    school: Annotated[
        str | None,
        typer.Option("--school", help="School key: use its names, extra terms, allow list."),
    ] = None,
    rules_only: Annotated[
        bool, typer.Option("--rules-only", help="Do not load the toxicity model.")
    ] = False,
) -> None:
    """Assess each text: scores, categories, severity and the rules that matched."""
    all_texts = _read_texts(texts, file)
    if not all_texts:
        typer.echo("Nothing to classify: give TEXT arguments or --file.", err=True)
        raise typer.Exit(2)
    with _command_logging():
        _classify(all_texts, as_json=as_json, config=config, school=school, rules_only=rules_only)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("classify")(classify)


@contextmanager
def _command_logging() -> Iterator[None]:
    """Warnings to stderr for this command; the model's failure is printed once, not logged."""
    monitor_log = logging.getLogger("monitor")
    pipeline_log = logging.getLogger("monitor.classify.pipeline")
    handler: logging.Handler | None = None
    if not logging.getLogger().handlers and not monitor_log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        handler.setLevel(logging.WARNING)
        monitor_log.addHandler(handler)
    level = pipeline_log.level
    pipeline_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        pipeline_log.setLevel(level)
        if handler is not None:
            monitor_log.removeHandler(handler)


def _classify(
    all_texts: list[str],
    *,
    as_json: bool,
    config: Path | None,
    school: str | None,
    rules_only: bool,
) -> None:
    """The body of ``monitor classify``."""
    classifier = Classifier()
    schools: list[School] = []
    base_dir: Path | None = None
    if config is not None:
        from monitor.context import load_or_exit

        loaded = load_or_exit(config)
        classifier, schools = loaded.config.classifier, list(loaded.config.schools)
        base_dir = loaded.path.parent
    pipeline = ClassifierPipeline(classifier, schools, base_dir=base_dir)
    if school is not None and school not in pipeline.schools:
        known = ", ".join(sorted(pipeline.schools)) or "none (give --config)"
        typer.echo(f"Unknown school {school!r}; known: {known}", err=True)
        raise typer.Exit(2)
    if rules_only:
        engine = pipeline.engine(school)
        assessments = [combine(engine.run(t), None, classifier.thresholds, None) for t in all_texts]
    else:
        assessments = pipeline.assess(all_texts, school_key=school)
    if as_json:
        for text, assessment in zip(all_texts, assessments, strict=True):
            typer.echo(json.dumps({"text": text, **assessment.to_json()}, ensure_ascii=False))
    else:
        terminal().print(_table(all_texts, assessments))
    if rules_only:
        typer.echo("Rules only (--rules-only): no toxicity scores.", err=True)
    elif not pipeline.model_status.available:
        status = pipeline.model_status
        checked = f"Rules and {status.still_scoring} only" if status.still_scoring else "Rules only"
        typer.echo(
            f"{checked}: a model is unavailable ({status.reason}). Fix: {status.fix}.",
            err=True,
        )
