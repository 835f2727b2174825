"""``monitor dead-letters``: the scaled mode's tasks that failed on every retry.

A task is only a trigger ("poll this account", "deliver what the outbox holds"): what it
works on is in the database, so a task put back runs again where it failed, and a task
dropped loses nothing the leader does not queue again on its own schedule.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from typing import Annotated

import typer
from rich.table import Table

from monitor.commands.records import cli_actor
from monitor.context import AppContext
from monitor.display import console as terminal
from monitor.display import terminal_text
from monitor.scale.broker import QUEUES, ScaleError, ScaleSettings
from monitor.scale.dead_letter_queue import UnknownQueue, purge, requeue, summarise

log = logging.getLogger(__name__)

EXIT_UNREACHABLE = 1
EXIT_USAGE = 2
QueuesArgument = Annotated[
    list[str] | None,
    typer.Argument(help=f"Queues ({', '.join(QUEUES)}); none with --all.", show_default=False),
]


def scale_extra_installed() -> bool:
    """Whether the ``scale`` extra (Dramatiq with RabbitMQ's client) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("dramatiq", "pika"))


def _scale_or_exit() -> ScaleSettings:
    # pika logs each failed connection attempt at length; the command says it in one line
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    try:
        scale = ScaleSettings.from_settings(AppContext.from_env().settings)
    except ScaleError as exc:
        typer.echo(f"The scaled mode is misconfigured: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    if scale is None:
        typer.echo(
            "The scaled mode is off (MONITOR_BROKER_URL is not set): there are no "
            "dead-letter queues.",
            err=True,
        )
        raise typer.Exit(EXIT_USAGE)
    if not scale_extra_installed():
        typer.echo('The scaled mode needs its extra: pip install -e ".[scale]"', err=True)
        raise typer.Exit(EXIT_USAGE)
    return scale


def _unreachable(exc: Exception) -> typer.Exit:
    typer.echo(f"The broker is unreachable: {type(exc).__name__}", err=True)
    return typer.Exit(EXIT_UNREACHABLE)


def _chosen(queues: list[str] | None, *, every: bool) -> list[str]:
    chosen = list(QUEUES) if every else list(queues or [])
    unknown = [q for q in chosen if q not in QUEUES]
    if not chosen or unknown or (every and queues):
        typer.echo(
            f"Name the queues ({', '.join(QUEUES)}) or give --all."
            + (f" Unknown: {', '.join(unknown)}." if unknown else ""),
            err=True,
        )
        raise typer.Exit(EXIT_USAGE)
    return chosen


def _each_queue(
    scale: ScaleSettings,
    chosen: list[str],
    operation: Callable[[ScaleSettings, str], int],
    done: str,
) -> None:
    """Run ``operation`` on each chosen queue; one line each: how many tasks were ``done``."""
    try:
        for queue in chosen:
            count = operation(scale, queue)
            if count:
                log.warning("%s: %d dead-lettered %s task(s) %s", cli_actor(), count, queue, done)
            typer.echo(f"{queue}: {count} task(s) {done}.")
    except UnknownQueue as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except Exception as exc:  # pika's connection errors have no common base worth naming
        raise _unreachable(exc) from None


def show() -> None:
    """List the tasks waiting in each dead-letter queue: how many, of which kind, and the
    last error of the first one."""
    scale = _scale_or_exit()
    table = Table(title="Dead-letter queues")
    for column in ("queue", "waiting", "tasks", "last error"):
        table.add_column(column)
    try:
        found = [summarise(scale, queue) for queue in QUEUES]
    except Exception as exc:  # pika's connection errors have no common base worth naming
        raise _unreachable(exc) from None
    for letters in found:
        kinds = ", ".join(f"{actor} {n}" for actor, n in sorted(letters.actors.items()))
        table.add_row(
            letters.queue,
            str(letters.count),
            kinds or "-",
            terminal_text(letters.last_error or "-"),
        )
    terminal().print(table)
    if any(letters.count for letters in found):
        terminal().print(
            "Fix the cause (the last error, the worker's log), then `monitor dead-letters "
            "requeue --all`; or drop them with `monitor dead-letters purge`."
        )


def requeue_command(
    queues: QueuesArgument = None,
    every: Annotated[bool, typer.Option("--all", help="Every queue.")] = False,
) -> None:
    """Put the dead-lettered tasks back on their queues with their retries reset."""
    _each_queue(_scale_or_exit(), _chosen(queues, every=every), requeue, "put back")


def purge_command(
    queues: QueuesArgument = None,
    every: Annotated[bool, typer.Option("--all", help="Every queue.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Drop them: nothing asks again.")] = False,
) -> None:
    """Drop the dead-lettered tasks (the work they stood for stays in the database)."""
    scale = _scale_or_exit()
    chosen = _chosen(queues, every=every)
    if not yes:
        typer.echo("This drops the tasks for good: run it again with --yes.", err=True)
        raise typer.Exit(EXIT_USAGE)
    _each_queue(scale, chosen, purge, "dropped")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    group = typer.Typer(
        help="The scaled mode's tasks that failed on every retry.", no_args_is_help=True
    )
    app.add_typer(group, name="dead-letters")
    group.command("list")(show)
    group.command("requeue")(requeue_command)
    group.command("purge")(purge_command)
