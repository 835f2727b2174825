"""Record commands: subject-access export, evidence export and the retention purge."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from sqlalchemy.orm import Session

from monitor import exports, retention
from monitor.clock import utcnow
from monitor.constants import MAX_ROW_ID
from monitor.context import AppContext, config_path_option, load_or_exit
from monitor.directory import Directory, load_directory
from monitor.storage.db import transaction

OutOption = Annotated[
    Path, typer.Option("--out", help="Folder the export is written under (created if missing).")
]
ZipOption = Annotated[bool, typer.Option("--zip", help="Write one .zip file instead of a folder.")]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", help="Configuration file (default: $MONITOR_CONFIG or ./monitor.yaml)."
    ),
]
AsOption = Annotated[
    str,
    typer.Option(
        "--as", help="Your staff id: the export is checked against your roles and audited."
    ),
]
DEFAULT_OUT = Path("exports")
ExportResult = TypeVar("ExportResult")
EXIT_REFUSED = 1  # as for `monitor case --do` and `monitor staff leave`
EXIT_USAGE = 2  # --as names no active member of staff


def _refused(exc: exports.ExportRefused) -> typer.Exit:
    """Report a refused export (already audited) and the exit code to leave with."""
    typer.echo(f"Refused: {exc}; nothing was exported.", err=True)
    return typer.Exit(EXIT_USAGE if isinstance(exc, exports.UnknownRequester) else EXIT_REFUSED)


def cli_actor() -> str:
    """Who ran the command, for the audit log."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name (e.g. a bare container uid)
        return "cli"


def _audited_export(
    config: Path | None, export: Callable[[Session, Directory, datetime], ExportResult]
) -> ExportResult:
    """Run ``export`` in one transaction; a refusal, audited by the export, is committed first."""
    ctx = AppContext.from_env()
    loaded = load_or_exit(config_path_option(config, ctx.settings))
    refused: exports.ExportRefused | None = None
    now = utcnow()
    with transaction(ctx.sessions) as session:
        directory = load_directory(
            session, loaded.config.routing, now=now, timezone=loaded.config.organisation.timezone
        )
        try:
            return export(session, directory, now)
        except exports.ExportRefused as exc:
            refused = exc  # the refusal itself is audited: commit, then report
    raise _refused(refused) from refused


def export_subject(
    handle: Annotated[
        str, typer.Argument(help="Author handle; any case, with or without a leading @.")
    ],
    staff_id: AsOption,
    out: OutOption = DEFAULT_OUT,
    as_zip: ZipOption = False,
    config: ConfigOption = None,
) -> None:
    """Export everything held about one author (subject access, R14): SLT, principal, DSL or IT."""
    try:
        result = _audited_export(
            config,
            lambda session, directory, now: exports.export_subject(
                session,
                handle,
                out,
                now=now,
                staff=staff_id,
                directory=directory,
                via=cli_actor(),
                as_zip=as_zip,
            ),
        )
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    for name, n in result.counts.items():
        typer.echo(f"{name:<14} {n}")
    if result.withheld:
        withheld = ", ".join(f"{name} {n}" for name, n in result.withheld.items())
        typer.echo(f"Withheld ({withheld}): {exports.WITHHELD_NOTE}")
    if not any(result.counts.values()) and not result.withheld:
        typer.echo("Nothing is held about this handle (the export says so).")
    typer.echo(f"Wrote {result.path}")


def evidence_export(
    case_ids: Annotated[
        list[int], typer.Argument(help="One or more case ids.", min=1, max=MAX_ROW_ID)
    ],
    staff_id: AsOption,
    out: OutOption = DEFAULT_OUT,
    as_zip: ZipOption = False,
    config: ConfigOption = None,
) -> None:
    """Export cases' evidence and history as HTML, CSV and JSON for the DSL, LADO or police."""
    try:
        result = _audited_export(
            config,
            lambda session, directory, now: exports.export_evidence(
                session,
                case_ids,
                out,
                now=now,
                staff=staff_id,
                directory=directory,
                via=cli_actor(),
                as_zip=as_zip,
            ),
        )
    except exports.UnknownCases as exc:
        typer.echo(f"{exc}; nothing was exported.", err=True)
        raise typer.Exit(1) from exc
    counts = result.counts
    typer.echo(
        f"{counts['cases']} case(s), {counts['evidence']} evidence record(s), "
        f"{counts['history']} history event(s)."
    )
    if counts["not_intact"]:
        typer.echo(
            f"WARNING: {counts['not_intact']} evidence record(s) no longer match their "
            "SHA-256 (marked in the report).",
            err=True,
        )
    typer.echo(f"Wrote {result.path}")


def retention_purge(
    config: ConfigOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would go; change nothing.")
    ] = False,
) -> None:
    """Delete what the retention policy no longer allows us to keep; prints the counts."""
    ctx = AppContext.from_env()
    loaded = load_or_exit(config_path_option(config, ctx.settings))
    with ctx.sessions() as session:
        report = retention.purge(
            session,
            loaded.config.retention,
            now=utcnow(),
            dry_run=dry_run,
            commit_batches=not dry_run,
        )
    verb = "would remove" if dry_run else "removed"
    for name, n in report.counts().items():
        typer.echo(f"{name:<16} {n}")
    total = sum(report.counts().values())
    typer.echo(f"Retention purge {verb} or scrubbed {total} row(s).")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    evidence_app = typer.Typer(help="Evidence records (R7).", no_args_is_help=True)
    retention_app = typer.Typer(help="The retention policy (R14).", no_args_is_help=True)
    app.add_typer(evidence_app, name="evidence")
    app.add_typer(retention_app, name="retention")

    app.command("export-subject")(export_subject)
    evidence_app.command("export")(evidence_export)
    retention_app.command("purge")(retention_purge)
