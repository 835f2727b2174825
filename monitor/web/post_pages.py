"""The scheduler in the web workplace (R16): the calendar, writing and changing a draft, and
the approval page. Who may do what is decided in ``monitor/rules`` (``rules.pages`` for the
pages, ``rules.posting`` for approving and overriding); the work itself is ``monitor.posts``,
the same functions the ``monitor post`` commands call."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from connectors.publishing import PublishError
from monitor import posts
from monitor.rules.pages import Page
from monitor.rules.posting import (
    MAX_IMAGES,
    NO_PUPILS,
    DraftContent,
    Image,
    LocalTimeError,
    local_to_utc,
)
from monitor.storage import tables as t
from monitor.web import policy_gate

if TYPE_CHECKING:
    from monitor.web.workplace import Viewer, Workplace

MAX_UPLOAD_BYTES = 20_000_000  # read at most this much of one file (the checks say the limit)
EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp"}


@dataclass(frozen=True)
class FormProblem(Exception):
    """Input that cannot become a draft at all (the checks report everything else)."""

    text: str


class PostPages:
    """The routes; ``checker`` runs the R16 checks (rules and toxicity model), uploaded
    images are kept in ``media_dir`` under their SHA-256 (the draft's hash covers them)."""

    def __init__(
        self, workplace: Workplace, checker: Callable[[], posts.Checker], media_dir: Path
    ) -> None:
        self.w = workplace
        self.config = workplace.config
        self.checker = checker
        self.media_dir = media_dir
        self.zone = ZoneInfo(self.config.organisation.timezone)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/posts", self.calendar_page),
            Route("/posts/new", self.new_form, methods=["GET"]),
            Route("/posts/new", self.create, methods=["POST"]),
            Route("/posts/{draft_id:int}", self.draft_page),
            Route("/posts/{draft_id:int}/edit", self.edit_form, methods=["GET"]),
            Route("/posts/{draft_id:int}/edit", self.edit, methods=["POST"]),
            Route("/posts/{draft_id:int}/submit", self.submit, methods=["POST"]),
            Route("/posts/{draft_id:int}/approve", self.approve, methods=["POST"]),
            Route("/posts/{draft_id:int}/changes", self.changes, methods=["POST"]),
            Route("/posts/{draft_id:int}/cancel", self.cancel, methods=["POST"]),
            Route("/posts/{draft_id:int}/withdraw", self.withdraw, methods=["POST"]),
        ]

    # ------------------------------------------------------------- permissions

    def _refuse(self, request: Request, why: str, status: int = 403) -> Exception:
        from monitor.web.workplace import Refusal

        return Refusal(self.w.message(request, "Not allowed", f"Refused: {why}.", status))

    def _allowed(
        self, request: Request, viewer: Viewer, page: Page, school: str | None = None
    ) -> None:
        why = policy_gate.page_refusal(viewer.directory, viewer.person, page, school_key=school)
        if why:
            raise self._refuse(request, why)

    def _schools(self, viewer: Viewer, page: Page) -> list[str]:
        """The schools whose posts ``viewer`` may see (POSTS) or write (POST_DRAFTING)."""
        return [
            s.key
            for s in self.config.schools
            if policy_gate.page_refusal(viewer.directory, viewer.person, page, school_key=s.key)
            is None
        ]

    def _draft(
        self, request: Request, session: Session, viewer: Viewer, draft_id: int
    ) -> tuple[t.PostDraft, str]:
        """The draft, if ``viewer`` may read it: the school's posts page, or may approve it."""
        draft = session.get(t.PostDraft, draft_id)
        if draft is None:
            from monitor.web.workplace import Refusal

            raise Refusal(self.w.message(request, "Not found", "There is no such draft.", 404))
        school = posts.school_key(session, draft)
        page_why = policy_gate.page_refusal(
            viewer.directory, viewer.person, Page.POSTS, school_key=school
        )
        approve_why = posts.approval_refusal(
            self.config, school, viewer.person.key, draft.drafted_by
        )
        if page_why and approve_why:
            raise self._refuse(request, page_why)
        return draft, school

    # ------------------------------------------------------------- the calendar

    async def calendar_page(self, request: Request) -> Response:
        week_text = request.query_params.get("week", "")

        def work(session: Session, viewer: Viewer, now: datetime) -> Response:
            self._allowed(request, viewer, Page.POSTS)
            local_today = now.astimezone(self.zone).date()
            try:
                day = date.fromisoformat(week_text) if week_text else local_today
            except ValueError:
                return self.w.message(request, "Not a date", "Give a date like 2026-12-07.", 400)
            monday = day - timedelta(days=day.weekday())
            days = [monday + timedelta(days=i) for i in range(7)]
            start = datetime.combine(monday, time(0), self.zone).astimezone(UTC)
            end = datetime.combine(monday + timedelta(days=7), time(0), self.zone).astimezone(UTC)
            schools = self._schools(viewer, Page.POSTS)
            entries = posts.calendar(session, start, end, schools)
            by_day: dict[date, list[dict[str, Any]]] = {d: [] for d in days}
            for entry in entries:
                assert entry.when is not None
                local = entry.when.astimezone(self.zone)
                by_day[local.date()].append({"entry": entry, "time": local.strftime("%H:%M %Z")})
            return self.w.render(
                request,
                "posts_calendar.html",
                days=[(d, by_day[d]) for d in days],
                monday=monday,
                previous=(monday - timedelta(days=7)).isoformat(),
                following=(monday + timedelta(days=7)).isoformat(),
                may_draft=bool(self._schools(viewer, Page.POST_DRAFTING)),
            )

        return await self.w.guarded(request, work)

    # ------------------------------------------------------------- writing

    def _form_context(
        self, viewer: Viewer, draft: t.PostDraft | None, school: str | None
    ) -> dict[str, Any]:
        schools = self._schools(viewer, Page.POST_DRAFTING)
        accounts = [
            a
            for a in self.config.accounts
            if a.school in schools and (school is None or a.school == school)
        ]
        content = DraftContent.from_json(draft.content) if draft is not None else None
        at = ""
        if content is not None and content.publish_at is not None:
            at = content.publish_at.astimezone(self.zone).strftime("%Y-%m-%dT%H:%M")
        return {
            "draft": draft,
            "content": content,
            "schools": schools if school is None else [school],
            "accounts": accounts,
            "at": at,
            "max_images": MAX_IMAGES,
            "part_count": max(2, len(content.parts) + 1 if content else 2),
            "no_pupils": NO_PUPILS,
            "timezone": self.config.organisation.timezone,
        }

    async def new_form(self, request: Request) -> Response:
        def work(_session: Session, viewer: Viewer, _now: datetime) -> Response:
            self._allowed(request, viewer, Page.POST_DRAFTING)
            if not self._schools(viewer, Page.POST_DRAFTING):
                raise self._refuse(request, "you serve no school whose posts you may write")
            return self.w.render(
                request, "post_form.html", **self._form_context(viewer, None, None)
            )

        return await self.w.guarded(request, work)

    async def create(self, request: Request) -> Response:
        async with request.form(max_files=MAX_IMAGES, max_fields=200) as form:
            uploads = await self._read_uploads(form)

            def work(session: Session, viewer: Viewer, now: datetime) -> Response:
                self.w.check_csrf(request, form)
                school = str(form.get("school") or "")
                self._allowed(request, viewer, Page.POST_DRAFTING, school)
                if school not in {s.key for s in self.config.schools}:
                    return self.w.message(request, "No school", "Choose the school.", 400)
                try:
                    content = self._content(form, uploads, [])
                    draft = posts.create_draft(
                        session,
                        self.checker(),
                        school=school,
                        staff_id=viewer.person.key,
                        content=content,
                        now=now,
                    )
                except (FormProblem, posts.PostError) as exc:
                    return self._form_error(request, viewer, None, None, exc)
                return RedirectResponse(f"/posts/{draft.id}", 303)

            return await self.w.guarded(request, work)

    async def edit_form(self, request: Request) -> Response:
        draft_id = int(request.path_params["draft_id"])

        def work(session: Session, viewer: Viewer, _now: datetime) -> Response:
            draft, school = self._draft(request, session, viewer, draft_id)
            self._allowed(request, viewer, Page.POST_DRAFTING, school)
            return self.w.render(
                request, "post_form.html", **self._form_context(viewer, draft, school)
            )

        return await self.w.guarded(request, work)

    async def edit(self, request: Request) -> Response:
        draft_id = int(request.path_params["draft_id"])
        async with request.form(max_files=MAX_IMAGES, max_fields=200) as form:
            uploads = await self._read_uploads(form)

            def work(session: Session, viewer: Viewer, now: datetime) -> Response:
                self.w.check_csrf(request, form)
                draft, school = self._draft(request, session, viewer, draft_id)
                self._allowed(request, viewer, Page.POST_DRAFTING, school)
                old = DraftContent.from_json(draft.content)
                try:
                    content = self._content(form, uploads, list(old.images))
                    posts.edit_draft(
                        session,
                        self.checker(),
                        draft_id,
                        staff_id=viewer.person.key,
                        content=content,
                        now=now,
                    )
                except (FormProblem, posts.PostError) as exc:
                    return self._form_error(request, viewer, draft, school, exc)
                return RedirectResponse(f"/posts/{draft_id}", 303)

            return await self.w.guarded(request, work)

    def _form_error(
        self,
        request: Request,
        viewer: Viewer,
        draft: t.PostDraft | None,
        school: str | None,
        exc: Exception,
    ) -> Response:
        text = exc.text if isinstance(exc, FormProblem) else str(exc)
        return self.w.render(
            request,
            "post_form.html",
            400,
            error=text,
            **self._form_context(viewer, draft, school),
        )

    async def _read_uploads(self, form: FormData) -> dict[int, tuple[str, bytes]]:
        """The uploaded files by slot: (file name, bytes), read before the database work."""
        out: dict[int, tuple[str, bytes]] = {}
        for slot in range(MAX_IMAGES):
            upload = form.get(f"img{slot}_file")
            if isinstance(upload, UploadFile) and upload.filename:
                data = await upload.read(MAX_UPLOAD_BYTES + 1)
                out[slot] = (upload.filename, data)
        return out

    def _save(self, data: bytes) -> Path:
        """Keep an uploaded image under its SHA-256 (the same bytes are stored once)."""
        media_type = posts.sniff_type(data)
        self.media_dir.mkdir(parents=True, exist_ok=True)
        path = self.media_dir / (
            hashlib.sha256(data).hexdigest() + EXTENSIONS.get(media_type, ".bin")
        )
        if not path.exists():
            part = path.with_suffix(path.suffix + ".part")
            part.write_bytes(data)
            part.replace(path)
        return path

    def _content(
        self,
        form: FormData,
        uploads: dict[int, tuple[str, bytes]],
        existing: list[Image],
    ) -> DraftContent:
        """The draft as the form describes it (the checks then judge it)."""
        parts = tuple(
            str(p).strip() for p in form.getlist("part") if isinstance(p, str) and p.strip()
        )
        images: list[Image] = []
        for slot in range(MAX_IMAGES):
            prefix = f"img{slot}_"
            alt = str(form.get(prefix + "alt") or "")
            if form.get(prefix + "none"):
                pupils: str | None = NO_PUPILS
            else:
                pupils = str(form.get(prefix + "pupils") or "").strip() or None
            kept = str(form.get(prefix + "existing") or "")
            if slot in uploads:
                _name, data = uploads[slot]
                if len(data) > MAX_UPLOAD_BYTES:
                    raise FormProblem(f"image {len(images) + 1} is far too large to upload")
                images.append(posts.load_image(self._save(data), alt, pupils))
            elif kept.isdigit() and int(kept) < len(existing) and not form.get(prefix + "remove"):
                old = existing[int(kept)]
                fresh = posts.load_image(old.path, alt, pupils)
                if fresh.sha256 != old.sha256:
                    raise FormProblem(f"image {len(images) + 1} changed on disk; upload it again")
                images.append(fresh)
        links = tuple(
            line.strip() for line in str(form.get("links") or "").splitlines() if line.strip()
        )
        at_text = str(form.get("at") or "").strip()
        try:
            publish_at = (
                local_to_utc(at_text, self.config.organisation.timezone) if at_text else None
            )
        except LocalTimeError as exc:
            raise FormProblem(str(exc)) from exc
        targets = tuple(str(k) for k in form.getlist("targets") if isinstance(k, str))
        title = str(form.get("title") or "").strip() or None
        return DraftContent(parts, tuple(images), links, title, targets, publish_at)

    # ------------------------------------------------------------- the approval page

    async def draft_page(self, request: Request) -> Response:
        draft_id = int(request.path_params["draft_id"])

        def work(session: Session, viewer: Viewer, _now: datetime) -> Response:
            draft, school = self._draft(request, session, viewer, draft_id)
            content = DraftContent.from_json(draft.content)
            approvals = session.scalars(
                select(t.PostApproval)
                .where(t.PostApproval.draft_id == draft.id)
                .order_by(t.PostApproval.id)
            ).all()
            publications = session.execute(
                select(t.Publication, t.Account.key)
                .join(t.Account, t.Account.id == t.Publication.account_id)
                .where(t.Publication.draft_id == draft.id)
                .order_by(t.Publication.id)
            ).all()
            approve_why = posts.approval_refusal(
                self.config, school, viewer.person.key, draft.drafted_by
            )
            may_write = (
                policy_gate.page_refusal(
                    viewer.directory, viewer.person, Page.POST_DRAFTING, school_key=school
                )
                is None
            )
            open_states = (posts.DRAFT, posts.AWAITING)
            out = any(p.state == posts.DONE for p, _key in publications)
            stoppable = draft.state not in (posts.PUBLISHED, posts.WITHDRAWN, posts.CANCELLED)
            return self.w.render(
                request,
                "post.html",
                draft=draft,
                school=school,
                content=content,
                when=self._local(draft.publish_at),
                local=self._local,
                findings=list(draft.findings),
                approvals=approvals,
                publications=publications,
                may_approve=approve_why is None and draft.state in open_states,
                approve_why=approve_why,
                may_override=posts.override_allowed(self.config, school, viewer.person.key),
                may_edit=may_write and draft.state in (*open_states, posts.APPROVED),
                may_submit=may_write and draft.state == posts.DRAFT,
                may_cancel=stoppable and self._may_stop(viewer, draft, school, published=False),
                may_withdraw=out and self._may_stop(viewer, draft, school, published=True),
                notice=request.query_params.get("done", ""),
            )

        return await self.w.guarded(request, work)

    def _may_stop(
        self, viewer: Viewer, draft: t.PostDraft, school: str, *, published: bool
    ) -> bool:
        why = posts.stopping_refusal(
            self.config, school, viewer.person.key, draft.drafted_by, published=published
        )
        return why is None

    def _local(self, value: datetime | None) -> str:
        if value is None:
            return "as soon as approved"
        return value.astimezone(self.zone).strftime("%a %d %b %Y %H:%M %Z")

    async def submit(self, request: Request) -> Response:
        draft_id = int(request.path_params["draft_id"])
        form = await request.form()

        def work(session: Session, viewer: Viewer, now: datetime) -> Response:
            self.w.check_csrf(request, form)
            _draft, school = self._draft(request, session, viewer, draft_id)
            self._allowed(request, viewer, Page.POST_DRAFTING, school)
            try:
                who = posts.submit(
                    session, self.config, draft_id, staff_id=viewer.person.key, now=now
                )
            except posts.PostError as exc:
                return self.w.message(request, "Refused", f"Refused: {exc}.", 409)
            done = "Sent for approval to " + ", ".join(who)
            return RedirectResponse(f"/posts/{draft_id}?{urlencode({'done': done})}", 303)

        return await self.w.guarded(request, work)

    async def approve(self, request: Request) -> Response:
        draft_id = int(request.path_params["draft_id"])
        form = await request.form()

        def work(session: Session, viewer: Viewer, now: datetime) -> Response:
            self.w.check_csrf(request, form)
            self._draft(request, session, viewer, draft_id)
            overrides = {
                key.removeprefix("override:"): str(value).strip()
                for key, value in form.multi_items()
                if key.startswith("override:") and str(value).strip()
            }
            try:
                # bound to the hash the approver was shown: a changed draft refuses
                made = posts.approve(
                    session,
                    self.checker(),
                    draft_id,
                    staff_id=viewer.person.key,
                    now=now,
                    overrides=overrides,
                    expected_hash=str(form.get("hash") or "") or "-",
                )
            except posts.PostError as exc:
                return self.w.message(request, "Not approved", f"Not approved: {exc}.", 409)
            due = min((p.due_at for p in made), default=None)
            done = f"Approved; publishing {self._local(due)}"
            return RedirectResponse(f"/posts/{draft_id}?{urlencode({'done': done})}", 303)

        return await self.w.guarded(request, work)

    async def changes(self, request: Request) -> Response:
        draft_id = int(request.path_params["draft_id"])
        form = await request.form()

        def work(session: Session, viewer: Viewer, now: datetime) -> Response:
            self.w.check_csrf(request, form)
            draft, _school = self._draft(request, session, viewer, draft_id)
            reason = str(form.get("reason") or "").strip()
            if not reason:
                return self.w.message(request, "No reason", "Say what should change.", 400)
            if str(form.get("hash") or "") != draft.content_hash:
                return self.w.message(
                    request, "Changed", "The draft changed since you read it; read it again.", 409
                )
            try:
                posts.reject(
                    session,
                    self.config,
                    draft_id,
                    staff_id=viewer.person.key,
                    reason=reason,
                    now=now,
                )
            except posts.PostError as exc:
                return self.w.message(request, "Refused", f"Refused: {exc}.", 409)
            return RedirectResponse(
                f"/posts/{draft_id}?{urlencode({'done': 'Changes requested'})}", 303
            )

        return await self.w.guarded(request, work)

    # ------------------------------------------------------------- cancel and withdraw

    async def cancel(self, request: Request) -> Response:
        """Stop a post before it is published (``posts.cancel``, as ``monitor post cancel``)."""
        draft_id = int(request.path_params["draft_id"])
        form = await request.form()

        def work(session: Session, viewer: Viewer, now: datetime) -> Response:
            self.w.check_csrf(request, form)
            self._draft(request, session, viewer, draft_id)
            try:
                stopped = posts.cancel(
                    session,
                    self.config,
                    draft_id,
                    staff_id=viewer.person.key,
                    reason=str(form.get("reason") or ""),
                    now=now,
                )
            except posts.PostError as exc:
                return self.w.message(request, "Not cancelled", f"Not cancelled: {exc}.", 409)
            done = f"Cancelled ({stopped} publication(s) stopped)"
            return RedirectResponse(f"/posts/{draft_id}?{urlencode({'done': done})}", 303)

        return await self.w.guarded(request, work)

    async def withdraw(self, request: Request) -> Response:
        """Take a published post down (``posts.withdraw``, as ``monitor post withdraw``): the
        permission is checked here first, then again by ``posts.withdraw`` in its own
        transactions (it calls the platforms between them)."""
        draft_id = int(request.path_params["draft_id"])
        form = await request.form()
        reason = str(form.get("reason") or "")
        staff: list[str] = []

        def check(session: Session, viewer: Viewer, _now: datetime) -> Response:
            self.w.check_csrf(request, form)
            self._draft(request, session, viewer, draft_id)
            staff.append(viewer.person.key)
            return Response(status_code=204)

        checked = await self.w.guarded(request, check)
        if not staff:  # refused: the page says why
            return checked

        def run() -> int:
            return posts.withdraw(
                self.w.sessions,
                self.config,
                self.w.publishers(),
                draft_id,
                staff_id=staff[0],
                reason=reason,
                now=self.w.clock(),
            )

        try:
            count = await self.w.db(run)
        except posts.PostError as exc:
            return self.w.message(request, "Not withdrawn", f"Not withdrawn: {exc}.", 409)
        except PublishError as exc:
            # the evidence is kept and what was already deleted is recorded: try again
            text = f"A platform refused or failed: {exc}. The evidence is kept; try again."
            return self.w.message(request, "Not withdrawn", text, 502)
        done = f"Withdrawn from {count} account(s); what was published is kept as evidence"
        return RedirectResponse(f"/posts/{draft_id}?{urlencode({'done': done})}", 303)
