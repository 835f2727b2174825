"""Polling one account: every stream, items and cursor stored together, health recorded."""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import (
    AccountRef,
    AuthError,
    Connector,
    NotSupported,
    Page,
    RateLimited,
    Stream,
    TransientError,
)
from connectors.registry import connector_class
from monitor.config_models import SecretRef
from monitor.constants import Platform
from monitor.secrets import SecretMissing, resolve_secret
from monitor.storage import repo
from monitor.storage import tables as t
from monitor.storage.db import transaction

log = logging.getLogger(__name__)

MAX_PAGES_PER_STREAM = 10  # a backlog beyond this continues on the next poll, with no gap
REPLY_WATCH_DAYS = 14  # replies are followed under own posts this recent
AUTH_RETRY = timedelta(hours=1)
MAX_BACKOFF = timedelta(minutes=30)


@dataclass
class PollOutcome:
    """What one poll of one account did."""

    account_key: str
    new_item_ids: list[int] = field(default_factory=list)
    per_stream: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    error_kind: str | None = None
    error: str | None = None
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        """True when the poll completed."""
        return self.error_kind is None and self.skipped is None


class ConnectorPool:
    """One connected connector per account, reused across polls so logins are reused too."""

    def __init__(
        self,
        *,
        config_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
        classes: Callable[[Platform], type[Connector]] = connector_class,
    ) -> None:
        self._config_dir = config_dir
        self._environ = environ
        self._classes = classes
        self._live: dict[str, tuple[str, Connector]] = {}

    def account_ref(self, account: t.Account) -> AccountRef:
        """The connector's view of ``account``, with secrets resolved (AuthError if missing)."""
        credentials: dict[str, str] = {}
        for name, ref in account.credential_refs.items():
            try:
                credentials[name] = resolve_secret(
                    SecretRef.model_validate(ref), base_dir=self._config_dir, environ=self._environ
                )
            except SecretMissing as exc:
                raise AuthError(f"credential {name!r}: {exc}") from exc
        return AccountRef(
            key=account.key,
            platform=Platform(account.platform),
            handle=account.handle,
            options=dict(account.options),
            credentials=credentials,
        )

    def get(self, account: t.Account) -> Connector:
        """A connected connector; rebuilt when the account's settings change."""
        fingerprint = hashlib.sha256(
            json.dumps(
                [account.platform, account.handle, account.options, account.credential_refs],
                sort_keys=True,
                default=str,
            ).encode()
        ).hexdigest()
        live = self._live.get(account.key)
        if live and live[0] == fingerprint:
            return live[1]
        if live:
            self.drop(account.key)
        connector = self._classes(Platform(account.platform))(self.account_ref(account))
        connector.connect()
        self._live[account.key] = (fingerprint, connector)
        return connector

    def drop(self, account_key: str) -> None:
        """Forget a connector (after an auth failure, or when the account goes)."""
        live = self._live.pop(account_key, None)
        if live:
            live[1].close()

    def close(self) -> None:
        """Close every connector."""
        for key in list(self._live):
            self.drop(key)


def mention_terms(school: t.School) -> list[str]:
    """The school's name, aliases and search terms, without duplicates."""
    settings = school.settings or {}
    terms = [school.name, *settings.get("aliases", []), *settings.get("search_terms", [])]
    return list(dict.fromkeys(term.strip() for term in terms if term and term.strip()))


def _poll_stream(
    connector: Connector, stream: Stream, cursor: str | None, own_posts: list[str], terms: list[str]
) -> Page:
    if stream is Stream.POSTS:
        return connector.poll_posts(cursor)
    if stream is Stream.REPLIES:
        return connector.poll_replies(own_posts, cursor)
    if stream is Stream.NOTIFICATIONS:
        return connector.poll_notifications(cursor)
    if stream is Stream.MENTIONS:
        return connector.poll_mentions(terms, cursor)
    return connector.poll_community(cursor)


def backoff_after(failures: int, interval: float, rng: random.Random | None = None) -> timedelta:
    """When to try again after ``failures`` transient failures: doubling, jittered, capped."""
    base = min(MAX_BACKOFF.total_seconds(), interval * 2 ** max(0, failures - 1))
    jitter = (rng or random.Random()).uniform(0.8, 1.2)
    return timedelta(seconds=min(MAX_BACKOFF.total_seconds(), base * jitter))


def poll_account(
    sessions: sessionmaker[Session],
    account_key: str,
    pool: ConnectorPool,
    now: datetime,
    *,
    ignore_pause: bool = False,
) -> PollOutcome:
    """Poll every stream of one account; never raises for platform trouble."""
    outcome = PollOutcome(account_key)
    with sessions() as session:
        account = session.scalars(select(t.Account).where(t.Account.key == account_key)).one()
        school = account.school
        health = session.get(t.AccountHealth, account.id)
        paused_until = health.paused_until if health else None
        failures = health.consecutive_failures if health else 0
    if not account.enabled or account.archived_at is not None:
        outcome.skipped = "disabled"
        return outcome
    if paused_until and paused_until > now and not ignore_pause:
        outcome.skipped = f"paused until {paused_until.isoformat()}"
        return outcome
    try:
        connector = pool.get(account)
        for stream in connector.streams():
            if stream is Stream.MENTIONS and not account.watch_mentions:
                continue
            _poll_one_stream(sessions, connector, account, school, stream, now, outcome)
    except RateLimited as exc:
        _failed(
            sessions,
            account,
            now,
            outcome,
            "rate_limited",
            str(exc),
            now + timedelta(seconds=exc.retry_after),
            pause=True,
        )
    except AuthError as exc:
        pool.drop(account.key)
        _failed(sessions, account, now, outcome, "auth", str(exc), now + AUTH_RETRY, pause=True)
    except TransientError as exc:
        retry = now + backoff_after(failures + 1, account.poll_interval_s)
        _failed(sessions, account, now, outcome, "transient", str(exc), retry, pause=False)
    except Exception as exc:
        log.exception("polling %s crashed", account.key)
        pool.drop(account.key)
        retry = now + backoff_after(failures + 1, account.poll_interval_s)
        _failed(
            sessions,
            account,
            now,
            outcome,
            "crash",
            f"{type(exc).__name__}: {exc}",
            retry,
            pause=False,
        )
    else:
        with transaction(sessions) as session:
            recovered = repo.mark_success(
                session, account.id, now, timedelta(seconds=account.poll_interval_s)
            )
        if recovered:
            log.info("polling %s recovered", account.key)
    return outcome


def _poll_one_stream(
    sessions: sessionmaker[Session],
    connector: Connector,
    account: t.Account,
    school: t.School,
    stream: Stream,
    now: datetime,
    outcome: PollOutcome,
) -> None:
    terms = mention_terms(school) if stream is Stream.MENTIONS else []
    for _ in range(MAX_PAGES_PER_STREAM):
        with sessions() as session:
            cursor = repo.load_cursor(session, account.id, stream.value)
            own = (
                repo.recent_own_posts(
                    session, account.id, since=now - timedelta(days=REPLY_WATCH_DAYS)
                )
                if stream is Stream.REPLIES
                else []
            )
        if stream is Stream.REPLIES and not own:
            return
        try:
            page = _poll_stream(connector, stream, cursor, own, terms)
        except NotSupported as exc:
            log.debug("%s: %s skipped: %s", account.key, stream.value, exc)
            return
        with transaction(sessions) as session:
            new_ids = repo.store_items(session, account, stream.value, page.items, now)
            repo.save_cursor(session, account.id, stream.value, page.cursor, now)
        outcome.new_item_ids.extend(new_ids)
        outcome.per_stream[stream.value] = outcome.per_stream.get(stream.value, 0) + len(new_ids)
        outcome.requests += page.requests
        if not page.more:
            return


def _failed(
    sessions: sessionmaker[Session],
    account: t.Account,
    now: datetime,
    outcome: PollOutcome,
    kind: str,
    message: str,
    retry_at: datetime,
    *,
    pause: bool,
) -> None:
    outcome.error_kind = kind
    outcome.error = message
    with transaction(sessions) as session:
        first = repo.mark_failure(
            session, account.id, now, kind=kind, message=message, retry_at=retry_at, pause=pause
        )
    if first:
        log.warning(
            "polling %s failed (%s): %s; next try %s",
            account.key,
            kind,
            message,
            retry_at.isoformat(),
        )
