"""Polling one account: every stream, items and cursor stored together, health recorded."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType

from sqlalchemy.orm import Session, sessionmaker

from connectors.base import (
    AccountRef,
    AuthError,
    Connector,
    ConnectorError,
    NotSupported,
    Page,
    RateLimited,
    Stream,
    TransientError,
)
from connectors.registry import connector_class
from monitor.config_models import SecretRef
from monitor.constants import Platform, PollErrorKind
from monitor.secrets import SecretMissing, resolve_secret
from monitor.session_store import DatabaseSessionStore
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.storage.queries import accounts as account_queries
from monitor.storage.queries import items as item_queries

log = logging.getLogger(__name__)

MAX_PAGES_PER_STREAM = 10  # a backlog beyond this continues on the next poll, with no gap
REPLY_WATCH_DAYS = 14  # replies are followed under own posts this recent
AUTH_RETRY = timedelta(hours=1)
MAX_BACKOFF = timedelta(minutes=30)


# Error kinds recorded in account_health.last_error_kind (the names older code imports).
RATE_LIMITED = PollErrorKind.RATE_LIMITED
AUTH = PollErrorKind.AUTH
TRANSIENT = PollErrorKind.TRANSIENT
REFUSED = PollErrorKind.REFUSED
CRASH = PollErrorKind.CRASH
BACKOFF_KINDS = frozenset({TRANSIENT, REFUSED, CRASH})  # waited out unless a person polls now


@dataclass(frozen=True)
class PollOutcome:
    """What one poll of one account did."""

    account_key: str
    new_item_ids: tuple[int, ...] = ()
    per_stream: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    requests: int = 0
    error_kind: PollErrorKind | None = None
    error: str | None = None
    skipped: str | None = None
    quarantined: int = 0  # items the database refused even alone, kept aside (queries.items)

    @property
    def ok(self) -> bool:
        """True when the poll completed."""
        return self.error_kind is None and self.skipped is None


@dataclass
class _Tally:
    """What a poll has stored so far (mutable while it runs, frozen into PollOutcome)."""

    new_item_ids: list[int] = field(default_factory=list)
    per_stream: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    quarantined: int = 0

    def outcome(
        self,
        account_key: str,
        *,
        error_kind: PollErrorKind | None = None,
        error: str | None = None,
    ) -> PollOutcome:
        """The frozen outcome of this poll."""
        return PollOutcome(
            account_key,
            tuple(self.new_item_ids),
            MappingProxyType(dict(self.per_stream)),
            self.requests,
            error_kind,
            error,
            quarantined=self.quarantined,
        )


class ConnectorPool:
    """One connected connector per account, reused across polls so logins are reused too."""

    def __init__(
        self,
        *,
        config_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
        classes: Callable[[Platform], type[Connector]] = connector_class,
        sessions: sessionmaker[Session] | None = None,
    ) -> None:
        self._config_dir = config_dir
        self._environ = environ
        self._classes = classes
        # with a database, login sessions are kept in it (encrypted) for every process
        self._sessions = sessions
        self._live: dict[str, tuple[str, Connector]] = {}
        # Polls, actions and checks run in scheduler threads. A connector holds one login
        # session and is not safe for two threads at once, so one lock per account makes
        # them take turns (``using``) and keeps two from logging in for it at once.
        self._locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, account_key: str) -> threading.RLock:
        with self._locks_guard:
            return self._locks.setdefault(account_key, threading.RLock())

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
        with self._lock(account.key):
            live = self._live.get(account.key)
            if live and live[0] == fingerprint:
                return live[1]
            if live:
                self.drop(account.key)
            ref = self.account_ref(account)
            connector = self._classes(Platform(account.platform))(ref)
            if self._sessions is not None and ref.credentials:
                store = DatabaseSessionStore(
                    self._sessions, account.id, account.key, ref.credentials
                )
                connector.use_session_store(store)
            connector.connect()
            self._live[account.key] = (fingerprint, connector)
            return connector

    @contextmanager
    def using(self, account: t.Account) -> Iterator[Connector]:
        """The account's connected connector, for this thread alone until the block ends."""
        with self._lock(account.key):
            yield self.get(account)

    def drop(self, account_key: str) -> None:
        """Forget a connector (after an auth failure, or when the account goes); waits its turn."""
        with self._lock(account_key):
            live = self._live.pop(account_key, None)
        if live:
            live[1].close()

    def close(self) -> None:
        """Close every connector."""
        for key in list(self._live):
            self.drop(key)


_REFUSED: set[tuple[str, Stream]] = set()  # (account, stream) a platform refused this process
_REFUSED_LOCK = threading.Lock()


def _first_refusal(account_key: str, stream: Stream) -> bool:
    """True the first time this process sees the platform refuse this account's stream."""
    with _REFUSED_LOCK:
        first = (account_key, stream) not in _REFUSED
        _REFUSED.add((account_key, stream))
    return first


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
    """Poll every stream of one account; never raises for platform trouble.

    A platform's rate-limit retry time is always waited out. ``ignore_pause`` (a
    person asking to poll now) skips only the waits the monitor chose itself: the
    pause after an auth failure and the backoff after transient failures.
    """
    with sessions() as session:
        account = account_queries.account_by_key(session, account_key)
        school = account.school
        health = session.get(t.AccountHealth, account.id)
        failures = health.consecutive_failures if health else 0
        waiting = _waiting(health, now, ignore_pause=ignore_pause)
    if not account.enabled or account.archived_at is not None:
        return PollOutcome(account_key, skipped="disabled")
    if waiting is not None:
        return PollOutcome(account_key, skipped=waiting)
    tally = _Tally()

    def every_stream(connector: Connector) -> None:
        for stream in connector.streams():
            if stream is Stream.MENTIONS and not account.watch_mentions:
                continue
            _poll_one_stream(sessions, connector, account, school, stream, now=now, tally=tally)

    return _run_poll(
        sessions, account, pool, now=now, failures=failures, tally=tally, work=every_stream
    )


def poll_thread(
    sessions: sessionmaker[Session],
    account_key: str,
    root_id: str,
    pool: ConnectorPool,
    now: datetime,
) -> PollOutcome:
    """Read the replies under one own post now (a post just published is watched closely).

    The replies are asked for from the start of the thread (no cursor: the account's reply
    cursor is left to its usual poll) and stored once per platform id as the usual poll
    would store them. Waits and failures are handled as for a poll of the whole account.
    """
    with sessions() as session:
        account = account_queries.account_by_key(session, account_key)
        health = session.get(t.AccountHealth, account.id)
        failures = health.consecutive_failures if health else 0
        waiting = _waiting(health, now, ignore_pause=False)
    if not account.enabled or account.archived_at is not None:
        return PollOutcome(account_key, skipped="disabled")
    if waiting is not None:
        return PollOutcome(account_key, skipped=waiting)
    tally = _Tally()

    def one_thread(connector: Connector) -> None:
        try:
            page = connector.poll_replies([root_id], None)
        except NotSupported as exc:
            log.debug("%s: replies of %s are not read: %s", account.key, root_id, exc)
            return
        with transaction(sessions) as session:
            stored = item_queries.store_page(
                session, account, Stream.REPLIES.value, page.items, now
            )
        tally.quarantined += len(stored.quarantined_ids)
        tally.new_item_ids.extend(stored.new_ids)
        tally.per_stream[Stream.REPLIES.value] = len(stored.new_ids)
        tally.requests += page.requests

    return _run_poll(
        sessions,
        account,
        pool,
        now=now,
        failures=failures,
        tally=tally,
        work=one_thread,
        whole_account=False,
    )


def _run_poll(
    sessions: sessionmaker[Session],
    account: t.Account,
    pool: ConnectorPool,
    *,
    now: datetime,
    failures: int,
    tally: _Tally,
    work: Callable[[Connector], None],
    whole_account: bool = True,
) -> PollOutcome:
    """Run ``work`` with the account's connector; platform trouble becomes the outcome.

    Only a poll of the ``whole_account`` counts as the account's success (its last success
    is what the monitoring-gap check reads); a failure of any poll is recorded, so a rate
    limit pauses every poll of the account."""
    try:
        with pool.using(account) as connector:
            work(connector)
    except RateLimited as exc:
        retry = now + timedelta(seconds=exc.retry_after)
        return _failed(
            sessions,
            account,
            now,
            tally,
            RATE_LIMITED,
            message=str(exc),
            retry_at=retry,
            pause=True,
        )
    except AuthError as exc:
        pool.drop(account.key)
        return _failed(
            sessions,
            account,
            now,
            tally,
            AUTH,
            message=str(exc),
            retry_at=now + AUTH_RETRY,
            pause=True,
        )
    except TransientError as exc:
        retry = now + backoff_after(failures + 1, account.poll_interval_s)
        return _failed(
            sessions, account, now, tally, TRANSIENT, message=str(exc), retry_at=retry, pause=False
        )
    except ConnectorError as exc:  # e.g. Gone for the account's own feed, or a 4xx
        retry = now + backoff_after(failures + 1, account.poll_interval_s)
        return _failed(
            sessions, account, now, tally, REFUSED, message=str(exc), retry_at=retry, pause=False
        )
    except Exception as exc:
        log.exception("polling %s crashed", account.key)
        pool.drop(account.key)
        retry = now + backoff_after(failures + 1, account.poll_interval_s)
        message = f"{type(exc).__name__}: {exc}"
        return _failed(
            sessions, account, now, tally, CRASH, message=message, retry_at=retry, pause=False
        )
    if not whole_account:
        return tally.outcome(account.key)
    with transaction(sessions) as session:
        recovered = account_queries.mark_success(
            session, account.id, now, timedelta(seconds=account.poll_interval_s)
        )
    if recovered:
        log.info("polling %s recovered", account.key)
    return tally.outcome(account.key)


def _waiting(health: t.AccountHealth | None, now: datetime, *, ignore_pause: bool) -> str | None:
    """Why this account must not be polled yet, or None."""
    if health is None:
        return None
    paused, reason = health.paused_until, health.paused_reason
    if paused is not None and paused > now and (not ignore_pause or reason == RATE_LIMITED):
        return f"paused until {paused.isoformat()} ({reason})"
    retry, kind = health.next_poll_at, health.last_error_kind
    if (
        not ignore_pause
        and health.consecutive_failures > 0
        and kind in BACKOFF_KINDS
        and retry is not None
        and retry > now
    ):
        return f"backing off until {retry.isoformat()} ({kind})"
    return None


def _poll_one_stream(
    sessions: sessionmaker[Session],
    connector: Connector,
    account: t.Account,
    school: t.School,
    stream: Stream,
    *,
    now: datetime,
    tally: _Tally,
) -> None:
    terms = mention_terms(school) if stream is Stream.MENTIONS else []
    for _ in range(MAX_PAGES_PER_STREAM):
        with sessions() as session:
            cursor = account_queries.load_cursor(session, account.id, stream.value)
            own = (
                item_queries.recent_own_posts(
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
            # e.g. a public Bluesky AppView that refuses search without a session: say so
            # once (not every poll) so that someone can give the account what it needs.
            level = logging.WARNING if _first_refusal(account.key, stream) else logging.DEBUG
            log.log(level, "%s: the %s stream is not polled: %s", account.key, stream.value, exc)
            return
        with transaction(sessions) as session:
            # the cursor moves on even past an item the database refuses: it is quarantined
            stored = item_queries.store_page(session, account, stream.value, page.items, now)
            account_queries.save_cursor(session, account.id, stream.value, page.cursor, now)
        new_ids = stored.new_ids
        tally.quarantined += len(stored.quarantined_ids)
        tally.new_item_ids.extend(new_ids)
        tally.per_stream[stream.value] = tally.per_stream.get(stream.value, 0) + len(new_ids)
        tally.requests += page.requests
        if not page.more:
            return


def _failed(
    sessions: sessionmaker[Session],
    account: t.Account,
    now: datetime,
    tally: _Tally,
    kind: PollErrorKind,
    *,
    message: str,
    retry_at: datetime,
    pause: bool,
) -> PollOutcome:
    with transaction(sessions) as session:
        first = account_queries.mark_failure(
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
    return tally.outcome(account.key, error_kind=kind, error=message)
