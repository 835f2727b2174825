"""The web workplace: sign-in, the queue and case pages (routes; the policy lives in rules/)."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor import audit
from monitor.actions import REPLY_TEMPLATES, ActionRefused, Actor, request_action
from monitor.config_models import Config
from monitor.constants import ActionKind
from monitor.directory import Directory, Person, load_directory
from monitor.posts import Checker, PublisherFor
from monitor.rules.pages import Page
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.storage.queries.cases import school_key_of
from monitor.web import accounts, overview, policy_gate, views
from monitor.web.oidc import CALLBACK_PATH, SignInRefused, SignOn
from monitor.web.ratelimit import AttemptLimiter

SESSION_COOKIE = "ssm_session"  # distinct: an identity provider on the same host uses _session
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# the digest preview is the email as sent: inline styles and data: images, still no script
DIGEST_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
WEB_ACTOR = "web"  # the audit actor for sign-in attempts that name nobody in the register


class SecurityHeaders:
    """Adds the Content Security Policy and friends to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                # a route may set a narrower policy of its own (the digest preview)
                message["headers"] = headers + [
                    (k, v) for k, v in SECURITY_HEADERS if k not in present
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass(frozen=True)
class Viewer:
    """The signed-in member of staff, with the directory they were judged against."""

    person: Person
    directory: Directory
    actor: Actor


class Refusal(Exception):
    """Stop and answer with this response."""

    def __init__(self, response: Response) -> None:
        self.response = response


class Workplace:
    """The routes, bound to the database, the configuration and a clock."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        config: Config,
        *,
        clock: Callable[[], datetime],
        oidc_client_secret: str | None = None,
        post_checker: Checker | None = None,
        media_dir: Path | None = None,
        config_dir: Path | None = None,
        publishers: PublisherFor | None = None,
    ) -> None:
        self.sessions = sessions
        self._post_checker = post_checker
        self._publishers = publishers
        self.media_dir = media_dir or Path("data") / "post-media"
        self.config_dir = config_dir
        self.config = config
        self.web = config.web
        self.clock = clock
        self.limiter = AttemptLimiter(self.web.login_attempts)
        self.sign_on = (
            SignOn(self.web.oidc, client_secret=oidc_client_secret) if self.web.oidc else None
        )
        self.templates = Environment(
            loader=PackageLoader("monitor.web", "templates"), autoescape=True
        )

    # ------------------------------------------------------------- plumbing

    def post_checker(self) -> Checker:
        """The R16 checks: the rules and the toxicity model (loaded on first use, shared with
        an in-process worker's; while it cannot load, the rules alone)."""
        if self._post_checker is None:
            from monitor.classify.pipeline import ClassifierPipeline

            pipeline = ClassifierPipeline(
                self.config.classifier, self.config.schools, base_dir=self.config_dir
            )
            self._post_checker = Checker.with_model(self.config, pipeline)
        return self._post_checker

    def publishers(self) -> PublisherFor:
        """A publisher per account, as ``monitor post withdraw`` builds them (on first use)."""
        if self._publishers is None:
            from monitor.jobs.poll import ConnectorPool
            from monitor.publishers import PublisherCache

            pool = ConnectorPool(config_dir=self.config_dir, sessions=self.sessions)
            self._publishers = PublisherCache(pool.account_ref)
        return self._publishers

    def routes(self) -> list[BaseRoute]:
        """Every route of the workplace."""
        from monitor.web.post_pages import PostPages

        post_pages = PostPages(self, self.post_checker, self.media_dir)
        return [
            *post_pages.routes(),
            Route("/", self.home),
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login_local, methods=["POST"]),
            Route("/login/sso", self.login_sso),
            Route(CALLBACK_PATH, self.callback),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/queue", self.queue),
            Route("/queue/rows", self.queue_rows),
            Route("/accounts", self.accounts_page),
            Route("/audit", self.audit_page),
            Route("/digest", self.digest_preview),
            Route("/staff", self.staff_page),
            Route("/subject-access", self.subject_form, methods=["GET"]),
            Route("/subject-access", self.subject_access, methods=["POST"]),
            Route("/staff/{key}/leave", self.leave_preview, methods=["GET"]),
            Route("/staff/{key}/leave", self.leave_confirm, methods=["POST"]),
            Route("/cases/{case_id:int}", self.case),
            Route("/cases/{case_id:int}/claim", self.claim, methods=["POST"]),
            Route("/cases/{case_id:int}/actions", self.act, methods=["POST"]),
            Route("/cases/{case_id:int}/evidence", self.evidence_pack, methods=["POST"]),
            Mount("/static", StaticFiles(packages=[("monitor.web", "static")]), name="static"),
        ]

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        """A page from ``templates/`` (autoescaped)."""
        body = self.templates.get_template(name).render(
            csrf=self.csrf_token(request), signed_in=request.session.get("name"), **context
        )
        return HTMLResponse(body, status_code=status)

    def message(self, request: Request, title: str, text: str, status: int) -> Response:
        """A page that says one thing (refusals, errors)."""
        return self.render(request, "message.html", status, title=title, text=text)

    @staticmethod
    def csrf_token(request: Request) -> str:
        """This session's CSRF token (made on first use)."""
        token = request.session.get("csrf")
        if not isinstance(token, str):
            token = request.session["csrf"] = secrets.token_urlsafe(32)
        return token

    def check_csrf(self, request: Request, form: FormData) -> None:
        """Refuse a form without this session's CSRF token."""
        sent = str(form.get("csrf") or "")
        expected = request.session.get("csrf")
        if not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
            raise Refusal(
                self.message(
                    request,
                    "Form expired",
                    "This form is out of date or was not sent by this site. Go back, reload the "
                    "page and try again.",
                    403,
                )
            )

    async def db(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run blocking database work off the event loop."""
        return await run_in_threadpool(fn, *args, **kwargs)

    def directory(self, session: Session, now: datetime) -> Directory:
        """Staff and routing as of ``now``."""
        return load_directory(
            session, self.config.routing, now=now, timezone=self.config.organisation.timezone
        )

    def start_session(self, request: Request, person: Person, via: str, now: datetime) -> None:
        """Sign ``person`` in: a fresh session (new CSRF token) so nothing carries over."""
        request.session.clear()
        request.session.update(
            {
                "staff": person.key,
                "name": person.name,
                "via": via,
                "at": now.isoformat(),
                "seen": now.isoformat(),
                "csrf": secrets.token_urlsafe(32),
            }
        )

    def viewer(self, request: Request, session: Session, now: datetime) -> Viewer:
        """The signed-in member of staff, or a Refusal (sign-in page, or signed out)."""
        key = request.session.get("staff")
        if not isinstance(key, str):
            raise Refusal(RedirectResponse(f"/login?{urlencode({'next': _next(request)})}", 303))
        at = datetime.fromisoformat(str(request.session.get("at")))
        seen = datetime.fromisoformat(str(request.session.get("seen")))
        if now - seen > timedelta(seconds=self.web.session_idle) or now - at > timedelta(
            seconds=self.web.session_lifetime
        ):
            request.session.clear()
            raise Refusal(RedirectResponse("/login?expired=1", 303))
        directory = self.directory(session, now)
        person = directory.person(key)
        if person is None or not directory.in_post(person):
            request.session.clear()
            audit.record(
                session,
                at=now,
                actor=key,
                action="web.session_refused",
                subject=f"staff:{key}",
                reason="no longer in post (leaving date passed, away or archived)",
            )
            session.commit()  # the refusal stays in the audit log
            raise Refusal(
                self.message(
                    request,
                    "Signed out",
                    "Your account is no longer in post on the staff register, so this session "
                    "has ended. Speak to the school's IT administrator if this is wrong.",
                    403,
                )
            )
        request.session["seen"] = now.isoformat()
        return Viewer(person, directory, Actor.of(person, directory))

    async def guarded(
        self, request: Request, work: Callable[[Session, Viewer, datetime], Response]
    ) -> Response:
        """Run ``work`` in one transaction for the signed-in viewer; a Refusal answers instead."""

        def run() -> Response:
            now = self.clock()
            try:
                with transaction(self.sessions) as session:
                    return work(session, self.viewer(request, session, now), now)
            except Refusal as refusal:
                return refusal.response

        response: Response = await self.db(run)
        return response

    # ------------------------------------------------------------- sign-in

    async def home(self, request: Request) -> Response:  # noqa: ARG002 - a Starlette endpoint
        return RedirectResponse("/queue", 303)

    async def login_page(self, request: Request) -> Response:
        notice = ""
        if request.query_params.get("expired"):
            notice = "Your session ended. Please sign in again."
        return self.render(
            request,
            "login.html",
            sso=self.sign_on is not None,
            local=self.web.local_accounts,
            notice=notice,
            next=request.query_params.get("next", "/queue"),
        )

    def _local_login_refused(self, request: Request, status: int, notice: str) -> Response:
        """The sign-in page again, with why a local sign-in was refused."""
        return self.render(
            request,
            "login.html",
            status,
            sso=self.sign_on is not None,
            local=True,
            notice=notice,
            next="/queue",
        )

    async def login_local(self, request: Request) -> Response:
        if not self.web.local_accounts:
            return self.message(request, "Not available", "Local accounts are switched off.", 404)
        form = await request.form()
        try:
            self.check_csrf(request, form)
        except Refusal as refusal:
            return refusal.response
        name = str(form.get("name") or "").strip().lower()[:320]
        keys = [f"ip:{request.client.host if request.client else '?'}", f"name:{name}"]

        def attempt() -> Response:
            now = self.clock()
            if self.limiter.blocked(keys, now):
                return self._local_login_refused(
                    request, 429, "Too many attempts. Wait 15 minutes and try again."
                )
            with transaction(self.sessions) as session:
                staff_key = accounts.check_password(
                    session,
                    name,
                    str(form.get("password") or ""),
                    str(form.get("code") or ""),
                    now=now,
                )
                directory = self.directory(session, now)
                person = directory.person(staff_key) if staff_key else None
                if person is None or not directory.in_post(person):
                    self.limiter.failed(keys, now)
                    audit.record(
                        session,
                        at=now,
                        actor=WEB_ACTOR,
                        action="web.sign_in_refused",
                        subject="sign-in",
                        reason="wrong name, password or code" if person is None else "not in post",
                        details={"name": name, "via": "local"},
                    )
                    return self._local_login_refused(
                        request, 401, "That name, password or code is not right."
                    )
                self.limiter.succeeded(keys)
                self.start_session(request, person, "local", now)
                audit.record(
                    session,
                    at=now,
                    actor=person.key,
                    action="web.signed_in",
                    subject=f"staff:{person.key}",
                    details={"via": "local"},
                )
            return RedirectResponse(_safe_next(str(form.get("next") or "")), 303)

        response: Response = await self.db(attempt)
        return response

    async def login_sso(self, request: Request) -> Response:
        if self.sign_on is None or self.web.public_url is None:
            return self.message(request, "Not available", "Single sign-on is not set up.", 404)
        return await self.sign_on.start(request, self.web.public_url + CALLBACK_PATH)

    async def callback(self, request: Request) -> Response:
        if self.sign_on is None:
            return self.message(request, "Not available", "Single sign-on is not set up.", 404)
        try:
            identity = await self.sign_on.finish(request)
        except SignInRefused as exc:
            reason = str(exc)
            await self.db(self._record_refusal, "", reason)
            return self.message(request, "Sign-in refused", f"Sign-in refused: {reason}.", 403)

        def match() -> Response:
            now = self.clock()
            with transaction(self.sessions) as session:
                directory = self.directory(session, now)
                person = next(
                    (
                        p
                        for p in directory.people
                        if p.email and p.email.strip().lower() == identity.email
                    ),
                    None,
                )
                if person is None or not directory.in_post(person):
                    why = "not in the staff register" if person is None else "not in post"
                    audit.record(
                        session,
                        at=now,
                        actor=WEB_ACTOR,
                        action="web.sign_in_refused",
                        subject="sign-in",
                        reason=why,
                        details={"email": identity.email, "via": "oidc"},
                    )
                    return self.message(
                        request,
                        "Not on the staff register",
                        f"{identity.email} is signed in at the school's identity provider but is "
                        "not an active member of staff on the monitor's register, so it cannot "
                        "be used here. Ask the school's IT administrator to add you.",
                        403,
                    )
                self.start_session(request, person, "oidc", now)
                audit.record(
                    session,
                    at=now,
                    actor=person.key,
                    action="web.signed_in",
                    subject=f"staff:{person.key}",
                    details={"via": "oidc", "email": identity.email},
                )
            return RedirectResponse("/queue", 303)

        response: Response = await self.db(match)
        return response

    def _record_refusal(self, email: str, reason: str) -> None:
        with transaction(self.sessions) as session:
            audit.record(
                session,
                at=self.clock(),
                actor=WEB_ACTOR,
                action="web.sign_in_refused",
                subject="sign-in",
                reason=reason,
                details={"email": email, "via": "oidc"},
            )

    async def logout(self, request: Request) -> Response:
        form = await request.form()
        try:
            self.check_csrf(request, form)
        except Refusal as refusal:
            return refusal.response
        key = request.session.get("staff")
        if isinstance(key, str):
            await self.db(self._record_signout, key)
        request.session.clear()
        return RedirectResponse("/login", 303)

    def _record_signout(self, key: str) -> None:
        with transaction(self.sessions) as session:
            audit.record(
                session, at=self.clock(), actor=key, action="web.signed_out", subject=f"staff:{key}"
            )

    # ------------------------------------------------------------- the queue

    async def queue(self, request: Request) -> Response:
        filters = views.QueueFilters.from_query(request.query_params)

        def work(session: Session, viewer: Viewer, now: datetime) -> Response:
            return self.render(
                request,
                "queue.html",
                lines=views.queue_lines(session, viewer.directory, viewer.person, filters, now=now),
                filters=filters,
                choices=views.filter_choices(session, viewer.person),
                rows_url="/queue/rows?" + filters.query_string(),
            )

        return await self.guarded(request, work)

    async def queue_rows(self, request: Request) -> Response:
        filters = views.QueueFilters.from_query(request.query_params)

        def work(session: Session, viewer: Viewer, now: datetime) -> Response:
            return self.render(
                request,
                "queue_rows.html",
                lines=views.queue_lines(session, viewer.directory, viewer.person, filters, now=now),
            )

        return await self.guarded(request, work)

    async def claim(self, request: Request) -> Response:
        form = await request.form()
        case_id = int(request.path_params["case_id"])

        def work(session: Session, viewer: Viewer, now: datetime) -> Response:
            self.check_csrf(request, form)
            return self._request(
                request,
                session,
                viewer,
                now,
                case_id,
                kind=ActionKind.ASSIGN,
                params={"staff": viewer.person.key},
                form=form,
                back="/queue",
            )

        return await self.guarded(request, work)

    # ------------------------------------------------------------- overview pages

    def _page_allowed(
        self, request: Request, viewer: Viewer, page: Page, school_key: str | None = None
    ) -> None:
        why = policy_gate.page_refusal(viewer.directory, viewer.person, page, school_key=school_key)
        if why:
            raise Refusal(self.message(request, "Not allowed", f"Refused: {why}.", 403))

    async def accounts_page(self, request: Request) -> Response:
        def work(session: Session, viewer: Viewer, now: datetime) -> Response:
            self._page_allowed(request, viewer, Page.ACCOUNTS)
            lines = overview.accounts_overview(session, viewer.directory, viewer.person, now=now)
            return self.render(request, "accounts.html", lines=lines)

        return await self.guarded(request, work)

    async def audit_page(self, request: Request) -> Response:
        before_text = request.query_params.get("before", "")
        before = int(before_text) if before_text.isdigit() else None
        verify = request.query_params.get("verify") == "1"

        def work(session: Session, viewer: Viewer, now: datetime) -> Response:
            self._page_allowed(request, viewer, Page.AUDIT_LOG)
            page = overview.audit_page(
                session, viewer.directory, viewer.person, before=before, verify=verify
            )
            audit.record(
                session,
                at=now,
                actor=viewer.person.key,
                action="web.audit_viewed",
                subject="audit",
                details={"before": before, "verified": verify, "breaks": len(page.breaks)},
            )
            return self.render(request, "audit.html", page=page, verified=verify)

        return await self.guarded(request, work)

    async def digest_preview(self, request: Request) -> Response:
        from monitor.digest.figures import TRUST, compute
        from monitor.digest.render import render
        from monitor.digest.weeks import last_complete_week, monday_of
        from monitor.web.links import base_url

        school = request.query_params.get("school") or None
        week = request.query_params.get("week") or ""

        def work(session: Session, viewer: Viewer, now: datetime) -> Response:
            page = Page.SCHOOL_DIGEST if school else Page.TRUST_DIGEST
            self._page_allowed(request, viewer, page, school)
            if school and school not in {s.key for s in self.config.schools}:
                return self.message(request, "Not found", "There is no such school.", 404)
            timezone = self.config.organisation.timezone
            chosen = week or last_complete_week(now, timezone)
            try:
                monday_of(chosen)
            except ValueError:
                return self.message(request, "Not a week", "Give a week like 2026-W47.", 400)
            figures = compute(
                session, week=chosen, scope=school or TRUST, now=now, timezone=timezone
            )
            rendered = render(
                figures,
                organisation=self.config.organisation.name,
                dashboard_url=self.config.organisation.dashboard_url,
                images="data",
                case_base=base_url(self.config),
            )
            # the email's own HTML: inline styles and data: images, never a script
            return HTMLResponse(rendered.html, headers={"content-security-policy": DIGEST_CSP})

        return await self.guarded(request, work)

    async def staff_page(self, request: Request) -> Response:
        def work(_session: Session, viewer: Viewer, _now: datetime) -> Response:
            self._page_allowed(request, viewer, Page.STAFF)
            people = [
                p
                for p in viewer.directory.people
                if not viewer.person.schools or not p.schools or p.schools & viewer.person.schools
            ]
            manages = (
                policy_gate.page_refusal(viewer.directory, viewer.person, Page.HANDOVER) is None
            )
            return self.render(
                request,
                "staff.html",
                people=people,
                directory=viewer.directory,
                manages=manages,
                done=request.query_params.get("done", "")[:200],
            )

        return await self.guarded(request, work)

    def _subject_allowed(self, request: Request, viewer: Viewer) -> None:
        why = policy_gate.subject_access_refusal(viewer.directory, viewer.person)
        if why:
            raise Refusal(self.message(request, "Not allowed", f"Refused: {why}.", 403))

    async def subject_form(self, request: Request) -> Response:
        def work(_session: Session, viewer: Viewer, _now: datetime) -> Response:
            self._subject_allowed(request, viewer)
            return self.render(request, "subject_form.html")

        return await self.guarded(request, work)

    async def subject_access(self, request: Request) -> Response:
        from monitor.exports import ExportRefused
        from monitor.exports.format import london_text
        from monitor.exports.subject import subject_report
        from monitor.web.subject_page import letter, sections

        form = await request.form()
        handle = str(form.get("handle") or "").strip()[:320]

        def work(session: Session, viewer: Viewer, now: datetime) -> Response:
            self.check_csrf(request, form)
            if not handle:
                return self.message(request, "No handle", "Give the person's handle.", 400)
            try:
                # the subject export's own rule; a refusal is audited there
                report = subject_report(
                    session,
                    handle,
                    now=now,
                    staff=viewer.person.key,
                    directory=viewer.directory,
                    via="web",
                )
            except ExportRefused as exc:
                refused = str(exc)
                session.commit()
                raise Refusal(
                    self.message(request, "Not allowed", f"Refused: {refused}.", 403)
                ) from exc
            return self.render(
                request,
                "subject_report.html",
                report=report,
                letter=letter(self.config),
                sections=sections(report),
                dated=london_text(now),
            )

        return await self.guarded(request, work)

    def _leaver(self, request: Request, viewer: Viewer, key: str) -> Person:
        leaver = viewer.directory.person(key)
        if leaver is None:
            raise Refusal(self.message(request, "Not found", "No such member of staff.", 404))
        # the viewer must serve every school the leaver serves (trust-wide: only trust-wide)
        covers = not viewer.person.schools or bool(
            leaver.schools and leaver.schools <= viewer.person.schools
        )
        why = policy_gate.page_refusal(
            viewer.directory, viewer.person, Page.HANDOVER, school_key=None
        ) or (None if covers else "this member of staff works for a school you do not serve")
        if why:
            raise Refusal(self.message(request, "Not allowed", f"Refused: {why}.", 403))
        return leaver

    async def leave_preview(self, request: Request) -> Response:
        from datetime import date

        from monitor.handover import HandoverRefused, plans_for

        key = str(request.path_params["key"])
        successor = request.query_params.get("successor") or None
        on_text = request.query_params.get("on", "")

        def work(session: Session, viewer: Viewer, now: datetime) -> Response:
            leaver = self._leaver(request, viewer, key)
            try:
                on = date.fromisoformat(on_text) if on_text else None
            except ValueError:
                on = None
            try:
                plans = plans_for(session, key, successor, now=now)
                refused = None
            except HandoverRefused as exc:
                plans, refused = [], str(exc)
            names = {p.key: p.name for p in viewer.directory.people}
            lines = [
                f"{plan.account_key}: refused: {plan.refused}"
                if plan.refused
                else f"{plan.account_key}: administrators after the handover: "
                + ", ".join(sorted(names.get(k, k) for k in plan.remaining))
                + (f" ({names.get(plan.added, plan.added)} added)" if plan.added else "")
                for plan in plans
            ]
            return self.render(
                request,
                "leave.html",
                leaver=leaver,
                on=on.isoformat() if on else "",
                successor=successor or "",
                lines=lines,
                blocked=bool(refused) or any(plan.refused for plan in plans),
                refused=refused,
                candidates=[
                    p
                    for p in viewer.directory.people
                    if p.key != key and viewer.directory.in_post(p)
                ],
            )

        return await self.guarded(request, work)

    async def leave_confirm(self, request: Request) -> Response:
        from datetime import date

        from monitor.handover import HandoverRefused, schedule_leaving

        form = await request.form()
        key = str(request.path_params["key"])

        def work(session: Session, viewer: Viewer, now: datetime) -> Response:
            self.check_csrf(request, form)
            self._leaver(request, viewer, key)
            try:
                on = date.fromisoformat(str(form.get("on") or ""))
            except ValueError:
                return self.message(request, "Not a date", "Give the last day as a date.", 400)
            successor = str(form.get("successor") or "") or None
            try:
                schedule_leaving(
                    session, key, on=on, successor_key=successor, actor=viewer.person.key, now=now
                )
            except HandoverRefused as exc:
                return self.message(request, "Refused", f"Refused: {exc}.", 409)
            words = f"{key} leaves on {on.isoformat()}"
            return RedirectResponse(f"/staff?{urlencode({'done': words})}", 303)

        return await self.guarded(request, work)

    # ------------------------------------------------------------- a case

    async def case(self, request: Request) -> Response:
        case_id = int(request.path_params["case_id"])

        def work(session: Session, viewer: Viewer, now: datetime) -> Response:
            case = self._case_for(request, session, viewer, case_id)
            page = views.case_page(
                session,
                viewer.directory,
                viewer.person,
                case,
                now=now,
                reply_templates=REPLY_TEMPLATES,
            )
            # every look at a case is in the audit log, and says whether its content was shown
            audit.record(
                session,
                at=now,
                actor=viewer.person.key,
                action="web.case_viewed",
                subject=f"case:{case.id}",
                case_id=case.id,
                details={"content_shown": page.shows_content, "safeguarding": page.safeguarding},
            )
            facts = views.facts_of(case, school_key_of(session, case))
            return self.render(
                request,
                "case.html",
                page=page,
                may_export=policy_gate.evidence_refusal(viewer.directory, viewer.person, facts)
                is None,
                done=request.query_params.get("done", "")[:200],
                form_id=secrets.token_urlsafe(16),
            )

        return await self.guarded(request, work)

    async def evidence_pack(self, request: Request) -> Response:
        from monitor.exports import ExportRefused
        from monitor.exports.evidence import build_evidence, record_custody
        from monitor.web.packs import FORMATS, evidence_handover

        form = await request.form()
        case_id = int(request.path_params["case_id"])
        wanted = str(form.get("format") or "zip")

        def work(session: Session, viewer: Viewer, now: datetime) -> Response:
            self.check_csrf(request, form)
            if wanted not in FORMATS:
                return self.message(request, "Unknown format", "Choose PDF, JSON or both.", 400)
            case = self._case_for(request, session, viewer, case_id)
            try:
                # the evidence export's own rule and refusal audit (CLI and web alike)
                built = build_evidence(
                    session,
                    [case.id],
                    now=now,
                    staff=viewer.person.key,
                    directory=viewer.directory,
                    via="web",
                )
            except ExportRefused as exc:
                refused = str(exc)
                session.commit()  # the refusal is in the audit log
                raise Refusal(
                    self.message(request, "Not allowed", f"Refused: {refused}.", 403)
                ) from exc
            page = views.case_page(
                session,
                viewer.directory,
                viewer.person,
                case,
                now=now,
                reply_templates=REPLY_TEMPLATES,
            )
            handover = evidence_handover(built, page, produced_by=built.requester.label, now=now)
            # chain of custody: who, when, and the SHA-256 of every file handed over
            record_custody(session, built, handover.files, now=now)
            name, body, media = handover.download(wanted)
            return Response(
                body,
                media_type=media,
                headers={"content-disposition": f'attachment; filename="{name}"'},
            )

        return await self.guarded(request, work)

    def _case_for(self, request: Request, session: Session, viewer: Viewer, case_id: int) -> t.Case:
        case = session.get(t.Case, case_id)
        if case is None:
            raise Refusal(self.message(request, "Not found", f"There is no case {case_id}.", 404))
        if not viewer.person.serves(school_key_of(session, case)):
            raise Refusal(
                self.message(
                    request,
                    "Not your school",
                    f"Case {case_id} belongs to a school you do not serve.",
                    403,
                )
            )
        return case

    async def act(self, request: Request) -> Response:
        form = await request.form()
        case_id = int(request.path_params["case_id"])

        def work(session: Session, viewer: Viewer, now: datetime) -> Response:
            self.check_csrf(request, form)
            try:
                kind = ActionKind(str(form.get("action") or ""))
            except ValueError:
                return self.message(request, "Unknown action", "That action is not known.", 400)
            params = {
                k: str(form.get(k))
                for k in ("template", "staff")
                if form.get(k) and (k != "staff" or kind is ActionKind.ASSIGN)
            }
            if kind is ActionKind.HIDE:
                params.setdefault("reason", "Reported by the school's moderators")
            return self._request(
                request,
                session,
                viewer,
                now,
                case_id,
                kind=kind,
                params=params,
                form=form,
                back=f"/cases/{case_id}",
            )

        return await self.guarded(request, work)

    def _request(
        self,
        request_: Request,
        session: Session,
        viewer: Viewer,
        now: datetime,
        case_id: int,
        *,
        kind: ActionKind,
        params: dict[str, Any],
        form: FormData,
        back: str,
    ) -> Response:
        """Ask for ``kind`` through the same path as Slack buttons and the CLI."""
        case = self._case_for(request_, session, viewer, case_id)
        reason = str(form.get("reason") or "").strip()[:500] or None
        form_id = str(form.get("form_id") or secrets.token_urlsafe(8))[:64]
        try:
            made = request_action(
                session,
                case,
                kind,
                actor=viewer.actor,
                now=now,
                directory=viewer.directory,
                reason=reason,
                params=params,
                # a double click sends the same form twice: one request
                idempotency_key=f"web:{viewer.person.key}:{case.id}:{kind.value}:{form_id}",
            )
        except ActionRefused as exc:
            refused = str(exc)
            session.commit()  # the refusal is in the audit log
            raise Refusal(
                self.message(request_, "Not allowed", f"{kind.value} refused: {refused}.", 403)
            ) from exc
        done = "queued for the worker" if made.status == "pending" else made.status
        words = f"{kind.value.replace('_', ' ')} requested: {done}"
        return RedirectResponse(f"{back}?{urlencode({'done': words})}", 303)


def _next(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _safe_next(value: str) -> str:
    """Only a path on this site (never ``//evil.example`` or a full URL)."""
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/queue"
