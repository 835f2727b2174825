"""Set-up commands: init, check-config, sync, db upgrade, status, audit verify."""

from __future__ import annotations

from datetime import date
from importlib.resources import files
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import func, select

from monitor import audit
from monitor.clock import utcnow
from monitor.context import AppContext, config_path_option, load_or_exit, upgrade_schema
from monitor.directory import load_directory, local_today
from monitor.display import when
from monitor.handover import staff_in_post
from monitor.jobs.compliance import check_after_change
from monitor.storage import migrate
from monitor.storage import tables as t
from monitor.storage.db import make_engine, transaction
from monitor.sync import apply_config

ConfigArg = Annotated[
    Path | None,
    typer.Argument(help="Configuration file (default: $MONITOR_CONFIG or ./monitor.yaml)."),
]


def admin_label(staff: t.Staff, today: date) -> str:
    """An administrator's name for ``monitor status``, marked when they no longer count."""
    name = escape(staff.name)
    if staff_in_post(staff, today=today):
        return name
    if staff.leaving_on is not None and staff.leaving_on < today:
        return f"{name} (left {staff.leaving_on.isoformat()})"
    return f"{name} (not in post)"


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
    audit_app = typer.Typer(help="Audit log commands.", no_args_is_help=True)
    app.add_typer(db_app, name="db")
    app.add_typer(audit_app, name="audit")

    @app.command("init")
    def init(
        path: Annotated[
            Path, typer.Argument(help="Where to write the starter configuration.")
        ] = Path("monitor.yaml"),
        force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    ) -> None:
        """Write a starter configuration (a copy of config/example.yaml) to edit."""
        if path.exists() and not force:
            # exit 0: the README's `monitor init && monitor run` still starts the service when
            # run again, and an edited configuration is never overwritten
            typer.echo(f"{path} already exists: left as it is (--force replaces it).", err=True)
            return
        path.write_text(
            files("monitor").joinpath("example.yaml").read_text(encoding="utf-8"), encoding="utf-8"
        )
        typer.echo(f"Wrote {path}. Edit it, then run: monitor check-config {path}")

    @app.command("check-config")
    def check_config(path: ConfigArg = None) -> None:
        """Validate the configuration; lists every problem with file, line and field (exit 2)."""
        ctx = AppContext.from_env()
        loaded = load_or_exit(config_path_option(path, ctx.settings))
        cfg = loaded.config
        typer.echo(
            f"OK: {loaded.path}: {len(cfg.schools)} school(s), {len(cfg.staff)} staff, "
            f"{len(cfg.accounts)} account(s), {len(loaded.warnings)} warning(s)."
        )

    @app.command("sync")
    def sync(path: ConfigArg = None) -> None:
        """Apply the configuration to the database (schools, staff, accounts, administrators)."""
        ctx = AppContext.from_env()
        loaded = load_or_exit(config_path_option(path, ctx.settings))
        now = utcnow()
        with transaction(ctx.sessions) as session:
            changes = apply_config(session, loaded.config, now=now)
            if changes:  # R3 and R13 are re-checked on every configuration change
                directory = load_directory(
                    session,
                    loaded.config.routing,
                    now=now,
                    timezone=loaded.config.organisation.timezone,
                )
                check_after_change(session, directory, now=now)
        for change in changes:
            typer.echo(f"{change.action:<24} {change.subject}")
        typer.echo(f"{len(changes)} change(s) applied." if changes else "Already up to date.")

    @db_app.command("upgrade")
    def db_upgrade() -> None:
        """Create or migrate the database schema to the newest version."""
        ctx = AppContext.from_env()
        engine = make_engine(ctx.settings.effective_database_url())
        before = migrate.current_revision(engine)
        upgrade_schema(engine)
        after = migrate.current_revision(engine)
        typer.echo(f"Database at revision {after} (was {before or 'empty'}).")

    @app.command("status")
    def status() -> None:
        """Show each account with its administrators and polling health."""
        ctx = AppContext.from_env()
        table = Table(title="Accounts")
        for column in (
            "account",
            "school",
            "platform",
            "handle",
            "admins",
            "last success",
            "next poll",
            "last error",
        ):
            table.add_column(column)
        now = utcnow()
        with ctx.sessions() as session:
            accounts = session.scalars(
                select(t.Account).where(t.Account.archived_at.is_(None)).order_by(t.Account.key)
            ).all()
            for account in accounts:
                admins = session.scalars(
                    select(t.Staff)
                    .join(t.AccountAdmin, t.AccountAdmin.staff_id == t.Staff.id)
                    .where(
                        t.AccountAdmin.account_id == account.id, t.AccountAdmin.removed_at.is_(None)
                    )
                    .where(t.Staff.active.is_(True))
                    .order_by(t.Staff.name)
                ).all()
                health = session.get(t.AccountHealth, account.id)
                # R3/R4: from the day after their leaving date (the school's) they no longer count
                today = local_today(now, account.school.timezone)
                in_post = sum(staff_in_post(staff, today=today) for staff in admins)
                admin_text = ", ".join(admin_label(staff, today) for staff in admins) or "none"
                if in_post < 2:
                    short = f"{in_post} in post, needs 2" if in_post < len(admins) else "needs 2"
                    admin_text = f"[red]{admin_text} ({short})[/red]"
                table.add_row(
                    account.key + ("" if account.enabled else " (disabled)"),
                    account.school.key,
                    account.platform,
                    account.handle,
                    admin_text,
                    when(health.last_success_at if health else None, account.school.timezone),
                    when(health.next_poll_at if health else None, account.school.timezone),
                    (health.last_error or "") if health else "never polled",
                )
            items = session.scalar(select(func.count()).select_from(t.Item)) or 0
        console = Console()
        if accounts:
            console.print(table)
        else:
            console.print("No accounts yet: run `monitor sync` after `monitor check-config`.")
        console.print(f"{items} item(s) stored.")
        _print_precision(console, ctx.settings.monitor_data_dir)

    @audit_app.command("verify")
    def audit_verify() -> None:
        """Check the audit log's hash chain; exit 1 on any break."""
        ctx = AppContext.from_env()
        with ctx.sessions() as session:
            count, breaks = audit.verify_chain(session)
        for item in breaks:
            typer.echo(f"BREAK at event {item.seq}: {item.problem}", err=True)
        if breaks:
            raise typer.Exit(1)
        typer.echo(f"Audit log intact: {count} event(s) verified.")


def _print_precision(console: Console, data_dir: Path) -> None:
    """What the int8 guard found for each model the worker loaded (classifier.precision)."""
    from monitor.classify.precision import STORE_NAME, PrecisionStore

    figures = PrecisionStore(data_dir / STORE_NAME).latest()
    if not figures:
        console.print(
            "Classifier precision: not checked yet (the int8 guard runs when the worker first "
            "loads a model; never with classifier.precision: fp32)."
        )
        return
    console.print("Classifier precision (int8 guard, newest per model):")
    for entry in figures:
        console.print(f"  {escape(entry.summary())}")
        console.print(f"    {escape(entry.reason)}")
