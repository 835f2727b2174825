"""Set-up commands: init, check-config, sync, db upgrade, status, audit verify."""

from __future__ import annotations

import logging
from datetime import date
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from monitor import audit
from monitor.audit_key import (
    MIN_KEY_CHARS,
    AuditKey,
    AuditKeyError,
    configured_in_environment,
    data_dir_key_path,
    load_key,
    new_key_text,
    replace_key_file,
)
from monitor.clock import utcnow
from monitor.commands.alerts import age_text
from monitor.commands.records import cli_actor
from monitor.context import (
    EXIT_CONFIG,
    AppContext,
    config_path_option,
    load_or_exit,
    open_database,
    upgrade_schema,
)
from monitor.directory import load_directory, local_today
from monitor.display import console as terminal
from monitor.display import terminal_text, when
from monitor.handover import staff_in_post
from monitor.jobhealth import failing_jobs
from monitor.jobs.compliance import check_after_change
from monitor.outbox import undelivered
from monitor.rules.channels import channel_warnings
from monitor.rules.engine import MIN_ADMINS
from monitor.storage import migrate
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.storage.queries.items import quarantined_count
from monitor.sync import apply_config

ConfigArg = Annotated[
    Path | None,
    typer.Argument(help="Configuration file (default: $MONITOR_CONFIG or ./monitor.yaml)."),
]


def admin_label(staff: t.Staff, today: date) -> str:
    """An administrator's name for ``monitor status``, marked when they no longer count."""
    name = terminal_text(staff.name)
    if staff_in_post(staff, today=today):
        return name
    if staff.leaving_on is not None and staff.leaving_on < today:
        return f"{name} (left {staff.leaving_on.isoformat()})"
    return f"{name} (not in post)"


def _checked_key_file(path: Path) -> AuditKey:
    """The key in ``path`` (never printed)."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise AuditKeyError(f"{path} cannot be read: {exc.strerror}") from exc
    if len(value) < MIN_KEY_CHARS:
        raise AuditKeyError(f"the key in {path} is shorter than {MIN_KEY_CHARS} characters")
    return AuditKey(secret=value.encode("utf-8"), source=str(path))


def _print_dead_letters(console: Any, settings: Any) -> None:
    """In the scaled mode, the tasks waiting in the dead-letter queues."""
    from monitor.scale.broker import ScaleError, ScaleSettings, dead_letter_counts

    try:
        scale = ScaleSettings.from_settings(settings)
    except ScaleError as exc:
        console.print(f"[red]Scaled mode misconfigured: {exc}[/red]", markup=True)
        return
    if scale is None:
        return
    logging.getLogger("pika").setLevel(logging.CRITICAL)  # one line below says it, not pika's
    try:
        counts = dead_letter_counts(scale)
    except Exception as exc:
        console.print(f"[red]Broker unreachable: {type(exc).__name__}[/red]")
        return
    total = sum(counts.values())
    if total:
        listed = ", ".join(f"{name} {n}" for name, n in counts.items() if n)
        console.print(
            f"[red]Dead-letter queue: {total} task(s) given up ({listed})[/red] "
            "(`monitor dead-letters list`)."
        )
    else:
        console.print("Dead-letter queue: 0.")


def init(
    path: Annotated[Path, typer.Argument(help="Where to write the starter configuration.")] = Path(
        "monitor.yaml"
    ),
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


def check_config(path: ConfigArg = None) -> None:
    """Validate the configuration; lists every problem with file, line and field (exit 2)."""
    ctx = AppContext.from_env()
    loaded = load_or_exit(config_path_option(path, ctx.settings))
    cfg = loaded.config
    # routes that need a channel the settings (environment) do not configure
    routes = channel_warnings(
        cfg, slack=bool(ctx.settings.slack_bot_token), email=bool(ctx.settings.smtp_host)
    )
    for warning in routes:
        typer.echo(f"{loaded.path}: warning: {warning.field}: {warning.message}", err=True)
    typer.echo(
        f"OK: {loaded.path}: {len(cfg.schools)} school(s), {len(cfg.staff)} staff, "
        f"{len(cfg.accounts)} account(s), {len(loaded.warnings) + len(routes)} warning(s)."
    )


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


def db_upgrade() -> None:
    """Create or migrate the database schema to the newest version."""
    ctx = AppContext.from_env()
    engine = open_database(ctx.settings, upgrade=False)
    before = migrate.current_revision(engine)
    upgrade_schema(engine)
    after = migrate.current_revision(engine)
    typer.echo(f"Database at revision {after} (was {before or 'empty'}).")


def status() -> None:
    """Show each account with its administrators and polling health, undelivered alerts and
    failing jobs."""
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
                .where(t.AccountAdmin.account_id == account.id, t.AccountAdmin.removed_at.is_(None))
                .where(t.Staff.active.is_(True))
                .order_by(t.Staff.name)
            ).all()
            health = session.get(t.AccountHealth, account.id)
            # R3/R4: from the day after their leaving date (the school's) they no longer count
            today = local_today(now, account.school.timezone)
            in_post = sum(staff_in_post(staff, today=today) for staff in admins)
            admin_text = ", ".join(admin_label(staff, today) for staff in admins) or "none"
            if in_post < MIN_ADMINS:
                needs = f"needs {MIN_ADMINS}"
                short = f"{in_post} in post, {needs}" if in_post < len(admins) else needs
                admin_text = f"[red]{admin_text} ({short})[/red]"
            table.add_row(
                account.key + ("" if account.enabled else " (disabled)"),
                account.school.key,
                account.platform,
                terminal_text(account.handle),
                admin_text,
                when(health.last_success_at if health else None, account.school.timezone),
                when(health.next_poll_at if health else None, account.school.timezone),
                terminal_text(health.last_error) if health else "never polled",
            )
        items = session.scalar(select(func.count()).select_from(t.Item)) or 0
        waiting = undelivered(session)
        jobs = failing_jobs(session)
        quarantined = quarantined_count(session)
    console = terminal()
    if accounts:
        console.print(table)
    else:
        console.print("No accounts yet: run `monitor sync` after `monitor check-config`.")
    console.print(f"{items} item(s) stored.")
    console.print(
        f"{quarantined} item(s) quarantined"
        + (" (refused by the database; see the IT case)" if quarantined else "."),
        markup=False,
    )
    age = waiting.oldest_age(now)
    if waiting.count and age is not None:
        console.print(
            f"[red]Undelivered alerts: {waiting.count}, the oldest waiting "
            f"{age_text(age.total_seconds())}[/red] (`monitor alerts list`)."
        )
    else:
        console.print("Undelivered alerts: 0.")
    for job in jobs:
        since = when(job.failing_since, "Europe/London")
        console.print(
            f"[red]Job {terminal_text(job.job_id)} failing: {job.consecutive_failures} run(s) in a "
            f"row since {since}: {terminal_text(job.last_error or '')}[/red]"
        )
    _print_dead_letters(console, ctx.settings)
    _print_precision(console, ctx.settings.monitor_data_dir)


def audit_verify() -> None:
    """Check the audit log: hash chain, HMACs and head record; exit 1 on any break."""
    ctx = AppContext.from_env()
    try:
        key = load_key(create=False)
    except AuditKeyError as exc:
        typer.echo(f"Cannot verify: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from exc
    with ctx.sessions() as session:
        result, breaks = audit.verify(session, key)
    for item in breaks:
        typer.echo(f"BREAK at event {item.seq}: {item.problem} [{item.kind}]", err=True)
    kinds = {item.kind for item in breaks}
    if "truncated" in kinds:
        typer.echo("The log was TRUNCATED: events were deleted from its end.", err=True)
    if "recomputed" in kinds:
        typer.echo(
            "The chain was RECOMPUTED: events were edited and re-hashed without the key.",
            err=True,
        )
    if breaks:
        raise typer.Exit(1)
    typer.echo(f"Audit log intact: {result.count} event(s) verified (key {key.id}).")
    if result.unchecked:
        typer.echo(f"{result.unchecked} event(s) signed with another key were not checked.")
    if result.key_id is None:
        typer.echo("The log is not anchored yet: the next audited change anchors it.")
    elif result.legacy_upto:
        typer.echo(
            f"Events 1-{result.legacy_upto} predate the anchor: their hash chain is "
            "covered by the HMAC of the events after them."
        )


def audit_rotate_key(
    new_key_file: Annotated[
        Path | None,
        typer.Option(
            "--new-key-file",
            help="File holding the new key (at least 32 characters); without it a new "
            "key is generated into the data directory's audit.key.",
        ),
    ] = None,
) -> None:
    """Re-sign the audit log with a new key (checked first with the current key; audited)."""
    ctx = AppContext.from_env()
    env_key = configured_in_environment()
    try:
        old = load_key(create=False)
        if new_key_file is None and env_key:
            raise AuditKeyError(
                "the key comes from MONITOR_AUDIT_KEY(_FILE): write the new key to a "
                "file and pass it with --new-key-file"
            )
        new_text = new_key_text() if new_key_file is None else None
        new = (
            _checked_key_file(new_key_file)
            if new_key_file is not None
            else AuditKey(secret=(new_text or "").encode("utf-8"), source="generated")
        )
    except AuditKeyError as exc:
        typer.echo(f"Cannot rotate: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from exc
    if new.id == old.id:
        typer.echo("Cannot rotate: the new key is the current key.", err=True)
        raise typer.Exit(EXIT_CONFIG)
    with ctx.sessions() as session:
        _, breaks = audit.verify(session, old)
    if breaks:
        for item in breaks:
            typer.echo(f"BREAK at event {item.seq}: {item.problem} [{item.kind}]", err=True)
        typer.echo("Not rotated: the log does not verify with the current key.", err=True)
        raise typer.Exit(1)
    with transaction(ctx.sessions) as session:
        signed = audit.rotate_key(session, old, new, at=utcnow(), actor=cli_actor())
    if env_key:
        where = f"{new_key_file}: point MONITOR_AUDIT_KEY_FILE at it and restart the monitor"
    else:
        replace_key_file(data_dir_key_path(), new.secret.decode("utf-8"))
        where = f"{data_dir_key_path()} (running services pick it up)"
    typer.echo(
        f"Audit key rotated from {old.id} to {new.id}: {signed} event(s) re-signed. "
        f"New key in {where}."
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
    audit_app = typer.Typer(help="Audit log commands.", no_args_is_help=True)
    app.add_typer(db_app, name="db")
    app.add_typer(audit_app, name="audit")
    app.command("init")(init)
    app.command("check-config")(check_config)
    app.command("sync")(sync)
    db_app.command("upgrade")(db_upgrade)
    app.command("status")(status)
    audit_app.command("verify")(audit_verify)
    audit_app.command("rotate-key")(audit_rotate_key)


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
        console.print(f"  {terminal_text(entry.summary())}")
        console.print(f"    {terminal_text(entry.reason)}")
