"""``monitor post``: draft, show, list, approve, reject, schedule, cancel and withdraw posts (R16)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.table import Table
from sqlalchemy import or_, select

from monitor import posts
from monitor.clock import utcnow
from monitor.config_models import Config, UnknownSchool
from monitor.context import AppContext, config_path_option, load_or_exit
from monitor.display import console as terminal
from monitor.display import terminal_text
from monitor.jobs.poll import ConnectorPool
from monitor.publishers import PublisherCache
from monitor.rules.posting import DraftContent, LocalTimeError, local_to_utc
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.sync import apply_config

ConfigOption = Annotated[Path | None, typer.Option("--config", help="Configuration file.")]
AsOption = Annotated[str, typer.Option("--as", help="Your staff id (roles are checked).")]
AtOption = Annotated[
    str | None,
    typer.Option(
        "--at",
        help="Publish time, school's local time (Europe/London): 'YYYY-MM-DD HH:MM'. "
        "Leave out to publish as soon as it is approved.",
    ),
]


def _load(config: Path | None) -> tuple[AppContext, Config, Path]:
    ctx = AppContext.from_env()
    loaded = load_or_exit(config_path_option(config, ctx.settings))
    with transaction(ctx.sessions) as session:
        apply_config(session, loaded.config, now=utcnow())
    return ctx, loaded.config, loaded.path


def post_checker(cfg: Config, config_path: Path) -> posts.Checker:
    """The checks as the worker runs them: the rules and the toxicity model (loaded here; while
    it cannot load, the rules alone, and the worker's check before publishing adds the model)."""
    from monitor.classify.pipeline import ClassifierPipeline

    pipeline = ClassifierPipeline(cfg.classifier, cfg.schools, base_dir=config_path.parent)
    return posts.Checker.with_model(cfg, pipeline)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(2)


def _at(text: str | None, cfg: Config, school: str) -> datetime | None:
    if text is None:
        return None
    try:
        return local_to_utc(text, cfg.timezone_of(school))
    except (LocalTimeError, UnknownSchool) as exc:
        raise _fail(str(exc)) from exc


def _local(value: datetime | None, cfg: Config) -> str:
    if value is None:
        return "as soon as approved"
    zone = ZoneInfo(cfg.organisation.timezone)
    return value.astimezone(zone).strftime("%a %d %b %Y %H:%M %Z")


def _print_findings(findings: list[dict[str, str]]) -> None:
    if not findings:
        typer.echo("Checks: all passed.")
        return
    typer.echo("Checks:")
    for f in findings:
        typer.echo(f"  {f['level']:5} {f['check']}@{f['where']}: {terminal_text(f['message'])}")


def draft_cmd(
    staff: AsOption,
    school: Annotated[str, typer.Option("--school", help="The school's key.")],
    to: Annotated[list[str], typer.Option("--to", help="Account key to post on (repeatable).")],
    text: Annotated[
        list[str], typer.Option("--text", help="The post; repeat for each part of a thread.")
    ],
    image: Annotated[
        list[Path] | None, typer.Option("--image", help="An image file (up to four).")
    ] = None,
    alt: Annotated[
        list[str] | None, typer.Option("--alt", help="Alt text, one per --image, in order.")
    ] = None,
    pupils: Annotated[
        list[str] | None,
        typer.Option(
            "--pupils", help="Pupils shown, one per --image: 'no pupils' or 'Name, Name'."
        ),
    ] = None,
    link: Annotated[list[str] | None, typer.Option("--link", help="A link (repeatable).")] = None,
    title: Annotated[str | None, typer.Option("--title", help="Title (Reddit).")] = None,
    at: AtOption = None,
    submit: Annotated[
        bool, typer.Option("--submit", help="Ask the approvers at once (Slack and email).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Write a draft; its checks are shown at once."""
    ctx, cfg, cfg_path = _load(config)
    images = list(image or [])
    alts = list(alt or [])
    declared = list(pupils or [])
    if len(alts) != len(images):
        raise _fail("give one --alt for every --image (alt text is required)")
    now = utcnow()
    try:
        loaded = tuple(
            posts.load_image(path, alts[i], declared[i] if i < len(declared) else None)
            for i, path in enumerate(images)
        )
        content = DraftContent(
            parts=tuple(text),
            images=loaded,
            links=tuple(link or ()),
            title=title,
            targets=tuple(to),
            publish_at=_at(at, cfg, school),
        )
        checker = post_checker(cfg, cfg_path)
        with transaction(ctx.sessions) as session:
            made = posts.create_draft(
                session, checker, school=school, staff_id=staff, content=content, now=now
            )
            draft_id, findings = made.id, list(made.findings)
            asked = posts.submit(session, cfg, draft_id, staff_id=staff, now=now) if submit else []
    except posts.PostError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"Draft {draft_id} saved.")
    _print_findings(findings)
    if asked:
        typer.echo("Approval requested from: " + ", ".join(asked))


def submit_cmd(draft_id: int, staff: AsOption, config: ConfigOption = None) -> None:
    """Ask the approvers for a decision (Slack and email)."""
    ctx, cfg, _ = _load(config)
    try:
        with transaction(ctx.sessions) as session:
            asked = posts.submit(session, cfg, draft_id, staff_id=staff, now=utcnow())
    except posts.PostError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"Approval requested from: {', '.join(asked)}")


def show_cmd(draft_id: int, config: ConfigOption = None) -> None:
    """A draft as it will be published, its checks, approvals and publications."""
    ctx, cfg, _ = _load(config)
    with ctx.sessions() as session:
        draft = session.get(t.PostDraft, draft_id)
        if draft is None:
            raise _fail(f"no draft {draft_id}")
        content = DraftContent.from_json(draft.content)
        typer.echo(f"Draft {draft.id} ({draft.state}) by {draft.drafted_by}")
        typer.echo(f"Hash: {draft.content_hash}")
        typer.echo(f"When: {_local(draft.publish_at, cfg)}")
        typer.echo("Targets: " + ", ".join(content.targets))
        if content.title:
            typer.echo(f"Title: {terminal_text(content.title)}")
        for number, part in enumerate(content.parts, 1):
            typer.echo(f"Part {number}: {terminal_text(part)}")
        for link in content.links:
            typer.echo(f"Link: {terminal_text(link)}")
        for number, img in enumerate(content.images, 1):
            shown = ", ".join(img.pupils) or "no pupils" if img.declared else "NOT DECLARED"
            typer.echo(
                f"Image {number}: {img.path} ({img.media_type}, {img.size} bytes); "
                f"alt: {terminal_text(img.alt)!r}; pupils: {terminal_text(shown)}"
            )
        _print_findings(list(draft.findings))
        for approval in session.scalars(
            select(t.PostApproval).where(t.PostApproval.draft_id == draft.id)
        ):
            current = "" if approval.content_hash == draft.content_hash else " (VOID: changed)"
            typer.echo(
                f"{approval.decision} by {approval.decided_by} at "
                f"{_local(approval.decided_at, cfg)}{current}"
                + (f": {terminal_text(approval.reason)}" if approval.reason else "")
            )
        for pub, key in session.execute(
            select(t.Publication, t.Account.key)
            .join(t.Account, t.Account.id == t.Publication.account_id)
            .where(t.Publication.draft_id == draft.id)
        ):
            typer.echo(
                f"{key}: {pub.state}"
                + (f" {pub.url}" if pub.url else "")
                + (f" ({terminal_text(pub.last_error)})" if pub.last_error else "")
            )


def list_cmd(
    week: Annotated[
        bool, typer.Option("--week", help="The calendar: scheduled or published in 7 days.")
    ] = False,
    school: Annotated[str | None, typer.Option("--school", help="Only this school.")] = None,
    config: ConfigOption = None,
) -> None:
    """Drafts, newest first; with --week, this week's scheduled and published posts."""
    ctx, cfg, _ = _load(config)
    now = utcnow()
    query = select(t.PostDraft, t.School.key).join(t.School, t.School.id == t.PostDraft.school_id)
    if school:
        query = query.where(t.School.key == school)
    if week:
        end = now + timedelta(days=7)
        query = query.where(
            or_(
                t.PostDraft.publish_at.between(now - timedelta(days=1), end),
                t.PostDraft.publish_at.is_(None)
                & t.PostDraft.updated_at.between(now - timedelta(days=7), end),
            )
        ).order_by(t.PostDraft.publish_at)
    else:
        query = query.order_by(t.PostDraft.id.desc()).limit(100)
    table = Table(title="Posts" + (" this week" if week else ""))
    for column in ("id", "school", "state", "when", "targets", "text"):
        table.add_column(column)
    with ctx.sessions() as session:
        for draft, key in session.execute(query):
            content = DraftContent.from_json(draft.content)
            table.add_row(
                str(draft.id),
                key,
                draft.state,
                _local(draft.publish_at, cfg),
                ", ".join(content.targets),
                terminal_text(content.parts[0][:60] if content.parts else ""),
            )
    terminal().print(table)


def approve_cmd(
    draft_id: int,
    staff: AsOption,
    override: Annotated[
        list[str] | None,
        typer.Option("--override", help="'check@where=reason' to override a warning."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Approve exactly the draft as it is now (a later change voids the approval)."""
    ctx, cfg, cfg_path = _load(config)
    overrides: dict[str, str] = {}
    for entry in override or []:
        key, sep, reason = entry.partition("=")
        if not sep:
            raise _fail(f"--override {entry!r}: write check@where=reason")
        overrides[key.strip()] = reason.strip()
    try:
        with transaction(ctx.sessions) as session:
            made = posts.approve(
                session,
                post_checker(cfg, cfg_path),
                draft_id,
                staff_id=staff,
                now=utcnow(),
                overrides=overrides,
            )
            due = min(p.due_at for p in made) if made else None
    except posts.PostError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"Draft {draft_id} approved; publishing {_local(due, cfg)}.")


def reject_cmd(
    draft_id: int,
    staff: AsOption,
    reason: Annotated[str, typer.Option("--reason", help="What to change.")],
    config: ConfigOption = None,
) -> None:
    """Request changes: the draft goes back to its author."""
    ctx, cfg, _ = _load(config)
    try:
        with transaction(ctx.sessions) as session:
            posts.reject(session, cfg, draft_id, staff_id=staff, reason=reason, now=utcnow())
    except posts.PostError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"Changes requested on draft {draft_id}.")


def schedule_cmd(
    draft_id: int, staff: AsOption, at: AtOption = None, config: ConfigOption = None
) -> None:
    """Change the publish time (a change: it needs approval again)."""
    ctx, cfg, cfg_path = _load(config)
    try:
        with transaction(ctx.sessions) as session:
            draft = session.get(t.PostDraft, draft_id)
            if draft is None:
                raise posts.PostError(f"no draft {draft_id}")
            school = posts.school_key(session, draft)
            content = replace(
                DraftContent.from_json(draft.content), publish_at=_at(at, cfg, school)
            )
            posts.edit_draft(
                session,
                post_checker(cfg, cfg_path),
                draft_id,
                staff_id=staff,
                content=content,
                now=utcnow(),
            )
    except posts.PostError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"Draft {draft_id} now {_local(content.publish_at, cfg)}; approve it again.")


def cancel_cmd(
    draft_id: int,
    staff: AsOption,
    reason: Annotated[str, typer.Option("--reason", help="Why (audited).")],
    config: ConfigOption = None,
) -> None:
    """Stop a draft or an approved post before it is published (it never goes out)."""
    ctx, cfg, _ = _load(config)
    try:
        with transaction(ctx.sessions) as session:
            stopped = posts.cancel(
                session, cfg, draft_id, staff_id=staff, reason=reason, now=utcnow()
            )
    except posts.PostError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"Draft {draft_id} cancelled ({stopped} publication(s) stopped).")


def withdraw_cmd(
    draft_id: int,
    staff: AsOption,
    reason: Annotated[str, typer.Option("--reason", help="Why (audited).")],
    config: ConfigOption = None,
) -> None:
    """Take a published post down: evidence is kept first, then it is deleted."""
    ctx, cfg, path = _load(config)
    pool = ConnectorPool(config_dir=path.parent, sessions=ctx.sessions)
    try:
        count = posts.withdraw(
            ctx.sessions,
            cfg,
            PublisherCache(pool.account_ref),
            draft_id,
            staff_id=staff,
            reason=reason,
            now=utcnow(),
        )
    except posts.PostError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"Draft {draft_id} withdrawn from {count} account(s); evidence kept.")


def register(app: typer.Typer) -> None:
    """Add ``monitor post ...`` to ``app``."""
    post_app = typer.Typer(
        help="Scheduled posts: drafts, approval, publishing.", no_args_is_help=True
    )
    app.add_typer(post_app, name="post")
    post_app.command("draft")(draft_cmd)
    post_app.command("submit")(submit_cmd)
    post_app.command("show")(show_cmd)
    post_app.command("list")(list_cmd)
    post_app.command("approve")(approve_cmd)
    post_app.command("reject")(reject_cmd)
    post_app.command("schedule")(schedule_cmd)
    post_app.command("cancel")(cancel_cmd)
    post_app.command("withdraw")(withdraw_cmd)
