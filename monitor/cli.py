"""The ``monitor`` command line."""

from __future__ import annotations

import typer

from monitor.commands import (
    alerts,
    cases,
    classify,
    core,
    dead_letters,
    digest,
    poll,
    posts,
    records,
    run,
    users,
)

app = typer.Typer(
    name="monitor",
    help="Monitor a school's or trust's official social media accounts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (
    core,
    poll,
    classify,
    cases,
    alerts,
    digest,
    records,
    run,
    users,
    posts,
    dead_letters,
):
    module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
