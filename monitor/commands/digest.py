"""``monitor digest``: preview the weekly SLT digest in a browser, or send it now."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from monitor.clock import utcnow
from monitor.context import EXIT_CONFIG, AppContext, config_path_option, load_or_exit
from monitor.digest.figures import TRUST, compute
from monitor.digest.render import render
from monitor.digest.send import scopes_for, send_weekly
from monitor.digest.weeks import last_complete_week, monday_of
from monitor.notify.email import EmailSender
from monitor.notify.errors import DeliveryError
from monitor.storage.db import transaction
from monitor.sync import apply_config
from monitor.web.links import base_url

SMTP_HELP = (
    "SMTP is not configured: set SMTP_HOST and SMTP_FROM (and SMTP_PORT, SMTP_USERNAME, "
    "SMTP_PASSWORD or SMTP_PASSWORD_FILE, SMTP_STARTTLS as your mail server needs)."
)


def text_path_for(html_path: Path) -> Path:
    """Where the plain-text part of a preview goes: OUT.txt next to OUT.html."""
    if html_path.suffix.lower() == ".txt":
        return html_path.with_name(html_path.name + ".txt")
    return html_path.with_suffix(".txt")


def digest(
    preview: Annotated[
        Path | None,
        typer.Option(
            "--preview",
            help="Write the digest as HTML to this file (and the text part next to it).",
        ),
    ] = None,
    send: Annotated[
        bool,
        typer.Option("--send", help="Send now by email (still once per week and scope)."),
    ] = False,
    week: Annotated[
        str | None,
        typer.Option("--week", help="ISO week, e.g. 2026-W47 (default: the last full week)."),
    ] = None,
    school: Annotated[
        str | None, typer.Option("--school", help="One school's digest (default: the trust).")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Configuration file.")] = None,
) -> None:
    """Preview the weekly SLT digest (--preview OUT.html) or send it now (--send)."""
    if (preview is None) == (not send):
        typer.echo("Use exactly one of --preview OUT.html or --send.", err=True)
        raise typer.Exit(EXIT_CONFIG)
    ctx = AppContext.from_env()
    cfg = load_or_exit(config_path_option(config, ctx.settings)).config
    timezone = cfg.organisation.timezone
    now = utcnow()
    chosen = week or last_complete_week(now, timezone)
    try:
        monday_of(chosen)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_CONFIG) from exc
    keys = [s.key for s in cfg.schools]
    if school is not None and school not in keys:
        typer.echo(f"No school {school!r} in the configuration ({', '.join(keys)}).", err=True)
        raise typer.Exit(EXIT_CONFIG)
    with transaction(ctx.sessions) as session:
        apply_config(session, cfg, now=now)

    if preview is not None:
        with ctx.sessions() as session:
            figures = compute(
                session, week=chosen, scope=school or TRUST, now=now, timezone=timezone
            )
        rendered = render(
            figures,
            organisation=cfg.organisation.name,
            dashboard_url=cfg.organisation.dashboard_url,
            images="data",
            case_base=base_url(cfg),
        )
        preview.parent.mkdir(parents=True, exist_ok=True)
        preview.write_text(rendered.html, encoding="utf-8")
        text_path = text_path_for(preview)
        text_path.write_text(rendered.text, encoding="utf-8")
        typer.echo(f"Subject: {rendered.subject}")
        typer.echo(f"Wrote {preview} and {text_path}.")
        return

    try:
        sender = EmailSender.from_settings(ctx.settings)
    except DeliveryError as exc:
        typer.echo(SMTP_HELP, err=True)
        raise typer.Exit(EXIT_CONFIG) from exc
    scopes = [f"school:{school}"] if school else scopes_for(cfg)
    runs = send_weekly(ctx.sessions, cfg, sender, now=now, week=chosen, scopes=scopes)
    problems = 0
    for run in runs:
        line = f"{run.week} {run.scope}: {run.outcome.replace('_', ' ')}"
        if run.sent_to:
            line += f", sent to {len(run.sent_to)} recipient(s)"
        typer.echo(line)
        for address, why in sorted(run.failed.items()):
            typer.echo(f"  not delivered to {address}: {why}", err=True)
        for address in run.uncertain:
            typer.echo(f"  may not have reached {address} (interrupted earlier)", err=True)
        if run.outcome in ("failed", "undeliverable", "no_recipients"):
            problems += 1
    if problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("digest")(digest)
