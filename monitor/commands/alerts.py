"""Alert outbox commands: list the undelivered alerts, cancel one (audited)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select

from monitor import audit
from monitor.clock import utcnow
from monitor.constants import AlertStatus
from monitor.context import AppContext, config_path_option, load_or_exit
from monitor.directory import load_directory
from monitor.display import when
from monitor.outbox import UNDELIVERED
from monitor.rules.delivery import ALERT_CANCEL_ROLES
from monitor.storage import tables as t
from monitor.storage.db import transaction

ConfigOption = Annotated[Path | None, typer.Option("--config", help="Configuration file.")]
EXIT_REFUSED = 1


def age_text(seconds: float) -> str:
    """``"3d 4h"``, ``"2h 5m"``, ``"7m"``: how long, roughly."""
    minutes = int(seconds // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


def list_alerts() -> None:
    """Every undelivered alert: where it goes, how long it has waited, the last error."""
    ctx = AppContext.from_env()
    now = utcnow()
    table = Table(title="Undelivered alerts")
    for column in ("id", "channel", "to", "kind", "case", "waiting", "attempts", "next try"):
        table.add_column(column)
    table.add_column("last error", overflow="fold")
    with ctx.sessions() as session:
        rows = session.scalars(
            select(t.Alert).where(t.Alert.status.in_(UNDELIVERED)).order_by(t.Alert.id)
        ).all()
        for alert in rows:
            table.add_row(
                str(alert.id),
                alert.channel,
                escape(alert.target),
                escape(alert.kind),
                str(alert.case_id or alert.payload.get("case") or "-"),
                age_text((now - alert.created_at).total_seconds()),
                str(alert.attempts),
                when(alert.next_attempt_at, "Europe/London"),
                escape(alert.last_error or ""),
            )
    console = Console()
    if not rows:
        console.print("No undelivered alerts.")
        return
    console.print(table)
    console.print(
        f"{len(rows)} undelivered alert(s). Each is retried until delivered; "
        "`monitor alerts cancel ID --as STAFF_ID --reason TEXT` stops one."
    )


def cancel(
    alert_id: Annotated[int, typer.Argument(help="The alert's id (`monitor alerts list`).")],
    staff_id: Annotated[str, typer.Option("--as", help="Your staff id (roles are checked).")],
    reason: Annotated[str, typer.Option("--reason", help="Why it need not be delivered.")],
    config: ConfigOption = None,
) -> None:
    """Stop retrying an undelivered alert (IT, SLT, the principal or a DSL; audited)."""
    ctx = AppContext.from_env()
    loaded = load_or_exit(config_path_option(config, ctx.settings))
    if not reason.strip():
        typer.echo("--reason must say why the alert need not be delivered.", err=True)
        raise typer.Exit(2)
    now = utcnow()
    with transaction(ctx.sessions) as session:
        directory = load_directory(
            session,
            loaded.config.routing,
            now=now,
            timezone=loaded.config.organisation.timezone,
        )
        person = directory.person(staff_id)
        if person is None or not directory.in_post(person):
            typer.echo(f"No active member of staff {staff_id!r}.", err=True)
            raise typer.Exit(2)
        if not directory.effective_roles(person) & ALERT_CANCEL_ROLES:
            needed = ", ".join(sorted(r.value for r in ALERT_CANCEL_ROLES))
            typer.echo(f"{person.name} cannot cancel alerts: that needs {needed}.", err=True)
            raise typer.Exit(EXIT_REFUSED)
        alert = session.get(t.Alert, alert_id, with_for_update=True)
        if alert is None:
            typer.echo(f"No alert {alert_id}.", err=True)
            raise typer.Exit(2)
        if alert.status not in UNDELIVERED:
            typer.echo(f"Alert {alert_id} is {alert.status}: nothing to cancel.", err=True)
            raise typer.Exit(EXIT_REFUSED)
        alert.status = AlertStatus.CANCELLED.value
        alert.next_attempt_at = None
        alert.last_error = f"cancelled by {person.key}: {reason.strip()}"[:2000]
        audit.record(
            session,
            at=now,
            actor=person.key,
            action="alert_cancelled",
            subject=f"alert:{alert.id}",
            case_id=alert.case_id,
            reason=reason.strip(),
            details={
                "channel": alert.channel,
                "target": alert.target,
                "kind": alert.kind,
                "attempts": alert.attempts,
                "created_at": alert.created_at.isoformat(),
            },
        )
    typer.echo(f"Alert {alert_id} cancelled: it will not be retried.")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    alerts_app = typer.Typer(help="Alert outbox commands.", no_args_is_help=True)
    app.add_typer(alerts_app, name="alerts")

    alerts_app.command("list")(list_alerts)
    alerts_app.command("cancel")(cancel)
