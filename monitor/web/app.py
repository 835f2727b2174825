"""Starlette app: ``/healthz`` (alive), ``/readyz`` (database reachable and migrated) and,
with a configuration, the staff's web workplace (``monitor/web/workplace.py``).

``/readyz`` also reports the undelivered alerts (count and oldest age) and is not ready
while a scheduled job keeps failing (``monitor.jobhealth``), naming it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from monitor.clock import utcnow
from monitor.config_models import Config
from monitor.jobhealth import failing_jobs
from monitor.outbox import undelivered
from monitor.posts import Checker, PublisherFor
from monitor.storage import migrate
from monitor.storage import tables as t
from monitor.storage.db import session_factory

# An in-process worker in these states is not doing its job (standby is fine: another leads).
WORKER_NOT_READY = frozenset({"retrying", "stopped"})


def create_app(
    engine: Engine,
    *,
    worker_state: Callable[[], dict[str, Any]] | None = None,
    config: Config | None = None,
    session_secret: str | None = None,
    oidc_client_secret: str | None = None,
    clock: Callable[[], datetime] = utcnow,
    post_checker: Checker | None = None,
    media_dir: Path | None = None,
    config_dir: Path | None = None,
    publishers: PublisherFor | None = None,
) -> Starlette:
    """The web app bound to ``engine``; ``worker_state`` reports an in-process worker, if any.

    With ``config`` it is also the staff's workplace (sign-in, queue, cases); the session
    cookie is signed with ``session_secret`` (a random key per process when None).
    """

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> JSONResponse:
        body: dict[str, Any] = {"time": utcnow().isoformat()}
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                # read directly: probed every 30 s, it must not log a line each time
                current, head = migrate.stored_revision(conn), migrate.packaged_head()
            body["database"] = "ok"
            body["schema"] = current
            if current != head:
                body["status"] = "schema not migrated: run `monitor db upgrade`"
                return JSONResponse(body, status_code=503)
            with engine.connect() as conn:
                failing = conn.execute(
                    select(func.count())
                    .select_from(t.AccountHealth)
                    .where(t.AccountHealth.consecutive_failures > 0)
                ).scalar()
            body["accounts_failing"] = int(failing or 0)
            with Session(engine) as session:
                now = utcnow()
                body["undelivered_alerts"] = undelivered(session).to_json(now)
                jobs = failing_jobs(session)
            body["jobs_failing"] = {
                job.job_id: {
                    "failures": job.consecutive_failures,
                    "since": job.failing_since.isoformat() if job.failing_since else None,
                    "error": job.last_error,
                }
                for job in jobs
            }
        except SQLAlchemyError as exc:
            body["status"] = f"database unavailable: {type(exc).__name__}"
            return JSONResponse(body, status_code=503)
        if worker_state is not None:
            body["worker"] = worker = worker_state()
            if worker.get("role") in WORKER_NOT_READY:
                body["status"] = f"worker {worker.get('role')}"
                return JSONResponse(body, status_code=503)
        if body["jobs_failing"]:
            body["status"] = "job(s) failing: " + ", ".join(body["jobs_failing"])
            return JSONResponse(body, status_code=503)
        body["status"] = "ready"
        return JSONResponse(body)

    routes: list[BaseRoute] = [Route("/healthz", healthz), Route("/readyz", readyz)]
    if config is None:
        return Starlette(routes=routes)
    from monitor.web.workplace import SESSION_COOKIE, SecurityHeaders, Workplace

    workplace = Workplace(
        session_factory(engine),
        config,
        clock=clock,
        oidc_client_secret=oidc_client_secret,
        post_checker=post_checker,
        media_dir=media_dir,
        config_dir=config_dir,
        publishers=publishers,
    )
    return Starlette(
        routes=routes + workplace.routes(),
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(
                SessionMiddleware,
                secret_key=session_secret or secrets.token_urlsafe(48),
                session_cookie=SESSION_COOKIE,
                max_age=int(config.web.session_lifetime),
                same_site="lax",  # the sign-in callback is a cross-site redirect: not strict
                https_only=config.web.cookies_secure,
            ),
        ],
    )
