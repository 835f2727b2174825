"""Case commands: list, show, act (the same path as Slack buttons), and staff leaving."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor import audit
from monitor.actions import (
    ActionRefused,
    ActionUnderWay,
    Actor,
    request_action,
)
from monitor.clock import utcnow
from monitor.commands.records import cli_actor
from monitor.config_models import Config
from monitor.constants import MAX_ROW_ID, ActionKind, AlertChannel, AlertKind, CaseState, Category
from monitor.context import AppContext, config_path_option, load_or_exit
from monitor.directory import Directory, load_directory
from monitor.display import console as terminal
from monitor.display import terminal_text, when
from monitor.handover import HandoverRefused, schedule_leaving
from monitor.jobs.compliance import check_after_change
from monitor.notify.case_view import MONITOR_ACTORS
from monitor.outbox import enqueue
from monitor.queue import moderation_queue
from monitor.rules.cli_access import break_glass_notice, cli_content_refusal
from monitor.rules.permissions import staff_change_refusal
from monitor.rules.visibility import dsl_stand_ins, dsls_in_post, is_safeguarding, may_see_content
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.storage.queries.cases import school_key_of
from monitor.sync import apply_config

ConfigOption = Annotated[Path | None, typer.Option("--config", help="Configuration file.")]
AsOption = Annotated[str | None, typer.Option("--as", help="Your staff id (roles are checked).")]


def _load(config: Path | None) -> tuple[AppContext, Config]:
    ctx = AppContext.from_env()
    loaded = load_or_exit(config_path_option(config, ctx.settings))
    now = utcnow()
    with transaction(ctx.sessions) as session:
        if apply_config(session, loaded.config, now=now):
            # R3/R13 are re-checked on every configuration change, not only on the schedule
            check_after_change(session, _directory(session, loaded.config, now), now=now)
    return ctx, loaded.config


def _directory(session: Session, config: Config, now: datetime) -> Directory:
    return load_directory(session, config.routing, now=now, timezone=config.organisation.timezone)


def _viewer(
    directory: Directory, staff_id: str | None, school_key: str | None = None
) -> Actor | None:
    if staff_id is None:
        return None
    person = directory.person(staff_id)
    # past their leaving date (the school's local date) they are no longer in post
    if person is None or not directory.in_post(person, school_key):
        typer.echo(f"No active member of staff {staff_id!r}.", err=True)
        raise typer.Exit(2)
    return Actor.of(person, directory)


def _tell_dsl_of_break_glass(
    session: Session,
    directory: Directory,
    case: t.Case,
    staff_id: str,
    os_user: str,
    reason: str,
    school_key: str | None,
) -> None:
    """Tell the school's DSLs (or their stand-ins) by Slack and email; no content is sent."""
    text = break_glass_notice(staff=staff_id, os_user=os_user, case_id=case.id, reason=reason)
    now = utcnow()
    people = dsls_in_post(directory, school_key) or dsl_stand_ins(directory, school_key)
    for person in people:
        for channel, target in (
            (AlertChannel.SLACK, person.slack_user_id),
            (AlertChannel.EMAIL, person.email),
        ):
            if target:
                enqueue(
                    session,
                    key=f"break_glass:{case.id}:{os_user}:{now.isoformat()}:{channel.value}:{target}",
                    channel=channel,
                    target=target,
                    kind=AlertKind.BREAK_GLASS,
                    now=now,
                    urgent=True,
                    payload={"text": text, "subject": f"Break-glass read of case {case.id}"},
                )


def list_cases(
    state: Annotated[
        list[CaseState] | None, typer.Option("--state", help="Only these states (repeatable).")
    ] = None,
    school: Annotated[str | None, typer.Option("--school", help="Only this school key.")] = None,
    open_only: Annotated[
        bool,
        typer.Option(
            "--open", help="Only open cases, as the moderators' queue (most serious first)."
        ),
    ] = False,
    limit: Annotated[
        int, typer.Option(help="At most this many, newest first.", min=1, max=MAX_ROW_ID)
    ] = 50,
    config: ConfigOption = None,
) -> None:
    """List cases as a table (safeguarding cases show no content)."""
    ctx, _ = _load(config)
    query = select(t.Case, t.School.key).outerjoin(t.School, t.School.id == t.Case.school_id)
    if state:
        query = query.where(t.Case.state.in_([s.value for s in state]))
    if open_only:
        query = query.where(
            t.Case.state.in_(
                [
                    s.value
                    for s in CaseState
                    if s not in (CaseState.CLOSED, CaseState.DISMISSED, CaseState.RESPONDED)
                ]
            )
        )
    if school:
        query = query.where(t.School.key == school)
    table = Table(title="Cases")
    for column in ("id", "school", "category", "severity", "state", "opened", "due", "title"):
        table.add_column(column)
    with ctx.sessions() as session:
        if open_only and not state:
            # the moderators' queue: most serious first, then by due time
            ids = [row.case_id for row in moderation_queue(session, school_key=school, limit=limit)]
            found = {c.id: (c, k) for c, k in session.execute(query.where(t.Case.id.in_(ids)))}
            listed = [found[i] for i in ids if i in found]
        else:
            listed = [
                (c, k) for c, k in session.execute(query.order_by(t.Case.id.desc()).limit(limit))
            ]
        for case, school_key in listed:
            table.add_row(
                str(case.id),
                school_key or "trust",
                case.category + (" (restricted)" if case.restricted else ""),
                case.severity,
                case.state + (" BREACHED" if case.breached_at else ""),
                when(case.opened_at),
                when(case.due_at),
                terminal_text(case.title),
            )
    terminal().print(table)


def show_case(
    case_id: Annotated[int, typer.Argument(help="The case id.", min=1, max=MAX_ROW_ID)],
    do: Annotated[
        ActionKind | None, typer.Option("--do", help="Request this action on the case.")
    ] = None,
    staff_id: AsOption = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (kept in the audit log).")
    ] = None,
    template: Annotated[
        str | None, typer.Option("--template", help="Reply template for --do reply.")
    ] = None,
    assignee: Annotated[str | None, typer.Option("--to", help="Staff id for --do assign.")] = None,
    break_glass: Annotated[
        bool,
        typer.Option(
            "--break-glass",
            help="Read a safeguarding case as --as although your OS user is not mapped to "
            "them (needs --reason; audited and told to the DSL).",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Show one case with its evidence and history, or request an action on it."""
    ctx, cfg = _load(config)
    if do is not None:
        if staff_id is None:
            typer.echo(
                "--do needs --as STAFF_ID: actions are taken by a named member of staff.",
                err=True,
            )
            raise typer.Exit(2)
        with transaction(ctx.sessions) as session:
            case = session.get(t.Case, case_id)
            if case is None:
                typer.echo(f"No case {case_id}.", err=True)
                raise typer.Exit(2)
            now = utcnow()
            directory = _directory(session, cfg, now)
            actor = _viewer(directory, staff_id, school_key_of(session, case))
            assert actor is not None
            params = {k: v for k, v in {"template": template, "staff": assignee}.items() if v}
            # who typed it: the server's OS user is on every action's record
            audit.record(
                session,
                at=now,
                actor=actor.key,
                action="cli.action",
                subject=f"case:{case.id}",
                case_id=case.id,
                details={"as": actor.key, "os_user": cli_actor(), "action": do.value},
            )
            refused: str | None = None
            under_way: str | None = None
            try:
                request = request_action(
                    session,
                    case,
                    do,
                    actor=actor,
                    now=now,
                    directory=directory,
                    reason=reason,
                    params=params,
                )
            except ActionUnderWay as exc:
                under_way = str(exc)  # audited too: commit, then report
            except ActionRefused as exc:
                refused = str(exc)  # the refusal itself is audited: commit, then report
        if under_way is not None:
            typer.echo(f"Nothing more to do on case {case_id}: {under_way}.")
            return
        if refused is not None:
            typer.echo(f"Refused: {refused}", err=True)
            raise typer.Exit(1)
        done = "queued for the worker" if request.status == "pending" else request.status
        typer.echo(
            f"{do.value} requested by {actor.name} on case {case_id}: {done} (request {request.id})."
        )
        return
    _print_case(ctx, cfg, case_id, staff_id, break_glass=break_glass, reason=reason)


def staff_leave(
    staff_key: Annotated[str, typer.Argument(help="Staff id of the person leaving.")],
    on: Annotated[str, typer.Option("--on", help="Leaving date, YYYY-MM-DD.")],
    successor: Annotated[
        str | None, typer.Option("--successor", help="Staff id who takes over.")
    ] = None,
    staff_id: AsOption = None,
    config: ConfigOption = None,
) -> None:
    """Record a leaving date: warnings before it, handover of roles and cases on it (R4)."""
    try:
        leaving = date.fromisoformat(on)
    except ValueError as exc:
        typer.echo(f"--on must be a date like 2027-07-22, not {on!r}", err=True)
        raise typer.Exit(2) from exc
    ctx, cfg = _load(config)
    if staff_id is not None:
        with ctx.sessions() as session:
            manager = _viewer(_directory(session, cfg, utcnow()), staff_id)
        assert manager is not None
        if why := staff_change_refusal(manager.roles):
            typer.echo(f"Refused: {why}", err=True)
            raise typer.Exit(1)
    try:
        with transaction(ctx.sessions) as session:
            plans = schedule_leaving(
                session,
                staff_key,
                on=leaving,
                successor_key=successor,
                actor=staff_id or cli_actor(),
                now=utcnow(),
            )
    except HandoverRefused as exc:
        typer.echo(f"Refused: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{staff_key} leaves on {leaving.isoformat()}.")
    for plan in plans:
        added = f", {plan.added} added" if plan.added else ""
        typer.echo(
            f"  {plan.account_key}: administrators after handover: {', '.join(sorted(plan.remaining | ({plan.added} if plan.added else set())))}{added}"
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    staff_app = typer.Typer(help="Staff commands.", no_args_is_help=True)
    app.add_typer(staff_app, name="staff")
    app.command("cases")(list_cases)
    app.command("case")(show_case)
    staff_app.command("leave")(staff_leave)


def current_os_user() -> str:
    """The login running this command (``cli_actor`` without its prefix)."""
    return cli_actor().removeprefix("cli:")


def _print_case(
    ctx: AppContext,
    cfg: Config,
    case_id: int,
    staff_id: str | None,
    *,
    break_glass: bool = False,
    reason: str | None = None,
) -> None:
    # platform text (handles, URLs, comments) and titles go through terminal_text: a handle
    # like "[bold red]x[/]" shows as written, and no escape sequence reaches the terminal
    console = terminal()
    with transaction(ctx.sessions) as session:
        case = session.get(t.Case, case_id)
        if case is None:
            typer.echo(f"No case {case_id}.", err=True)
            raise typer.Exit(2)
        directory = _directory(session, cfg, utcnow())
        school_key = school_key_of(session, case)
        viewer = _viewer(directory, staff_id, school_key)
        serves = viewer is None or viewer.serves(school_key)
        if not serves:
            typer.echo(f"Case {case.id} belongs to a school you do not serve.", err=True)
            raise typer.Exit(1)
        person = directory.person(viewer.key) if viewer is not None else None
        # the DSL and deputies; with none in post, those alerted in their place (R6)
        may_see = may_see_content(
            directory,
            person,
            school_key=school_key,
            category=Category(case.category),
            restricted=case.restricted,
        ).allowed
        os_user = current_os_user()
        glass_broken = False
        if may_see and is_safeguarding(
            category=Category(case.category), restricted=case.restricted
        ):
            member = next((s for s in cfg.staff if s.id == staff_id), None)
            why = cli_content_refusal(
                mapped=member is not None and member.os_user == os_user,
                break_glass=break_glass,
                reason=reason,
            )
            if why is not None:
                may_see = False
                console.print(f"Content not shown: {terminal_text(why)}.")
            elif break_glass and not (member is not None and member.os_user == os_user):
                glass_broken = True
                _tell_dsl_of_break_glass(
                    session, directory, case, staff_id or "", os_user, str(reason), school_key
                )
        now = utcnow()
        audit.record(
            session,
            at=now,
            actor=staff_id or cli_actor(),
            action="cli.case_viewed",
            subject=f"case:{case.id}",
            case_id=case.id,
            reason=reason if glass_broken else None,
            details={
                "as": staff_id,
                "os_user": os_user,
                "content_shown": may_see,
                "break_glass": glass_broken,
            },
        )
        console.print(f"[bold]Case {case.id}[/bold]: {terminal_text(case.title)}")
        console.print(
            f"category {case.category}, severity {case.severity}, state {case.state}; opened {when(case.opened_at)}; due {when(case.due_at)}"
        )
        if case.police_step:
            console.print(f"police report step: {case.police_step}")
        if case.cannot_hide:
            console.print("cannot hide on this platform: reported and blocked instead")
        if not may_see:
            console.print(
                "[yellow]Safeguarding case: content is visible only to the DSL and deputies (use --as).[/yellow]"
            )
        else:
            _print_content(console, session, case)
        _print_history(console, session, case, may_see=may_see)


def _print_content(console: Console, session: Session, case: t.Case) -> None:
    """The case's item and its evidence records (only for those who may see them)."""
    item = session.get(t.Item, case.item_id) if case.item_id else None
    if item is not None:
        console.print(
            f"{terminal_text(item.platform)} {terminal_text(item.url)}\n"
            f"@{terminal_text(item.author_handle)}: ",
            end="",
        )
        console.print(
            terminal_text(item.text, markup=False, newlines=True),
            markup=False,
            highlight=False,
        )
    for record in session.scalars(select(t.Evidence).where(t.Evidence.case_id == case.id)):
        console.print(
            f"evidence {record.id} captured {when(record.captured_at)} sha256 {record.sha256}"
        )


def _print_history(console: Console, session: Session, case: t.Case, *, may_see: bool) -> None:
    """The case's audit events, with people's reasons hidden from those who may not see it."""
    console.print("[bold]History[/bold]")
    for event in session.scalars(
        select(t.AuditEvent).where(t.AuditEvent.case_id == case.id).order_by(t.AuditEvent.seq)
    ):
        actor, action = (terminal_text(v, markup=False) for v in (event.actor, event.action))
        # R6: a person's free-text reason on a safeguarding case may describe the concern
        reason = event.reason
        if reason and not may_see and event.actor not in MONITOR_ACTORS:
            reason = "(reason visible only to those who may see this case)"
        console.print(
            f"  {when(event.at)}  {actor:<12} {action}  " + terminal_text(reason, markup=False),
            markup=False,
            highlight=False,
        )
