"""``monitor user add|reset``: local web accounts (argon2 hashes, optional TOTP) on the server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from monitor import audit
from monitor.clock import utcnow
from monitor.commands.records import cli_actor
from monitor.context import AppContext, config_path_option, load_or_exit
from monitor.storage.db import transaction
from monitor.sync import apply_config
from monitor.web import accounts, totp

ConfigOption = Annotated[Path | None, typer.Option("--config", help="Configuration file.")]
TotpOption = Annotated[
    bool, typer.Option("--totp", help="Also require a code from an authenticator app.")
]


def _set(staff_id: str, with_totp: bool, config: Path | None, *, reset: bool) -> None:
    ctx = AppContext.from_env()
    loaded = load_or_exit(config_path_option(config, ctx.settings))
    _ = ctx.engine  # an unreachable database is one line and exit 2, before any prompt
    password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    now = utcnow()
    try:
        with transaction(ctx.sessions) as session:
            apply_config(session, loaded.config, now=now)
            result = accounts.set_password(
                session, staff_id, password, now=now, with_totp=with_totp
            )
            if reset and result.created:
                raise accounts.AccountRefused(
                    f"{staff_id} has no local account yet: use `monitor user add`"
                )
            if not reset and not result.created:
                raise accounts.AccountRefused(
                    f"{staff_id} already has a local account: use `monitor user reset`"
                )
            audit.record(
                session,
                at=now,
                actor=cli_actor(),
                action="web.account_reset" if reset else "web.account_added",
                subject=f"staff:{staff_id}",
                details={"totp": with_totp},
            )
    except accounts.AccountRefused as exc:
        typer.echo(f"Refused: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"Local account for {staff_id} {'reset' if reset else 'added'}.")
    if result.totp_secret:
        typer.echo("Add this to the authenticator app (shown once):")
        typer.echo(f"  secret: {result.totp_secret}")
        typer.echo(
            "  "
            + totp.provisioning_uri(
                result.totp_secret, account=staff_id, issuer="School Social Monitor"
            )
        )


def add(
    staff_id: Annotated[str, typer.Argument(help="Staff id from the register.")],
    with_totp: TotpOption = False,
    config: ConfigOption = None,
) -> None:
    """Give a member of staff a local web account (asks for the password)."""
    _set(staff_id, with_totp, config, reset=False)


def reset(
    staff_id: Annotated[str, typer.Argument(help="Staff id from the register.")],
    with_totp: TotpOption = False,
    config: ConfigOption = None,
) -> None:
    """Set a new password (and a new TOTP secret with --totp, or none without)."""
    _set(staff_id, with_totp, config, reset=True)


def register(app: typer.Typer) -> None:
    """Add ``monitor user`` to ``app``."""
    user_app = typer.Typer(help="Local web accounts (for schools without single sign-on).")
    app.add_typer(user_app, name="user")
    user_app.command("add")(add)
    user_app.command("reset")(reset)
