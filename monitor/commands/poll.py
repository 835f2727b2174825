"""``monitor poll --once``: poll accounts now and show what was found."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from monitor.clock import utcnow
from monitor.context import AppContext, config_path_option, load_or_exit
from monitor.display import console as terminal
from monitor.display import terminal_text
from monitor.jobs.poll import ConnectorPool, poll_account
from monitor.worker import Worker


def poll(
    once: Annotated[
        bool,
        typer.Option("--once", help="Poll once and exit (the scheduler polls continuously)."),
    ] = False,
    account: Annotated[
        str | None, typer.Option("--account", help="Poll only this account key.")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Configuration file.")] = None,
) -> None:
    """Poll every enabled account (or one) now; store new items and print a summary."""
    if not once:
        typer.echo("Use --once (continuous polling is `monitor run`).", err=True)
        raise typer.Exit(2)
    ctx = AppContext.from_env()
    loaded = load_or_exit(config_path_option(config, ctx.settings))
    from monitor.classify.pipeline import ClassifierPipeline

    pipeline = ClassifierPipeline(
        loaded.config.classifier, loaded.config.schools, base_dir=loaded.path.parent
    )
    worker = Worker(
        ctx.sessions,
        loaded.config,
        pipeline,
        pool=ConnectorPool(config_dir=loaded.path.parent, sessions=ctx.sessions),
    )
    worker.sync(utcnow())
    keys = worker.account_keys()
    if account is not None:
        if account not in keys:
            typer.echo(
                f"No enabled account {account!r}; known: {', '.join(keys) or 'none'}", err=True
            )
            raise typer.Exit(2)
        keys = [account]
    table = Table(title="Poll")
    for column in ("account", "new items", "by stream", "status"):
        table.add_column(column)
    failed = 0
    try:
        for key in keys:
            outcome = poll_account(ctx.sessions, key, worker.pool, utcnow(), ignore_pause=True)
            streams = ", ".join(f"{name} {count}" for name, count in outcome.per_stream.items())
            status = (
                "ok"
                if outcome.ok
                else (outcome.skipped or f"{outcome.error_kind}: {outcome.error}")
            )
            failed += 0 if outcome.ok else 1
            if outcome.quarantined:
                status += f" ({outcome.quarantined} quarantined: IT is told)"
            # the error may quote what the platform sent back
            table.add_row(key, str(len(outcome.new_item_ids)), streams, terminal_text(status))
        worker.quarantine_cases(utcnow())
        report = worker.assess(utcnow())
    finally:
        worker.close()
    console = terminal()
    console.print(table)
    model = pipeline.model_status
    if report.assessed:
        scoring = (
            "the model and the rules" if model.available else f"the rules only: {model.message()}"
        )
        console.print(
            f"Assessed {report.assessed} item(s) with {scoring}; opened {len(report.cases_opened)} case(s).",
            markup=False,
        )
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("poll")(poll)
