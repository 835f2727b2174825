"""The poll job with the real connectors against their real peers, two schools per peer.

What the issue's "done when" asks of polling, for every platform: a second poll with
nothing new stores nothing and makes only the requests the cursors need (counted on the
wire), and a 429 pauses that account until the platform's retry time while the other
account keeps polling.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import AccountRef, Connector
from connectors.mastodon import MastodonConnector
from connectors.registry import connector_class, manifests
from monitor.clock import utcnow
from monitor.config import load_config
from monitor.config_models import Account, SecretRef
from monitor.constants import Platform
from monitor.jobs.poll import ConnectorPool, PollOutcome, mention_terms, poll_account
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.sync import apply_config
from tests.conftest import EXAMPLE_CONFIG
from tests.connectors.harness import contract_harness
from tests.connectors.harness_bluesky import BlueskyHarness, bluesky_harness
from tests.connectors.harness_mastodon import STAFF, MastodonHarness, mastodon_harness_fixture
from tests.connectors.harness_reddit import (
    ELSEWHERE,
    SCHOOL_PASSWORD,
    RedditHarness,
    reddit_harness_fixture,
)

__all__ = ["bluesky_harness", "mastodon_harness_fixture", "reddit_harness_fixture"]  # fixtures

SCHOOLS = (("oak", "oakfield", ("cjones", "dmurphy")), ("river", "riverside", ("ewright", "fali")))


@dataclass(frozen=True)
class TwoSchools:
    """Two school accounts on one peer, and how to drive and watch that peer."""

    refs: tuple[AccountRef, AccountRef]
    post: Callable[[int, str], str]  # school 0 or 1 posts; returns the platform id
    reply: Callable[[str, str], str]  # a member of the public replies to a post
    settle: Callable[[], None]  # wait (polling, with a timeout) until writes are readable
    fail_with_429: Callable[[], None]  # the peer's next answer to the connectors is a 429
    requests: Callable[[], int]  # requests the connectors made, counted by the peer's side
    classes: Callable[[Platform], type[Connector]]
    retry_after: tuple[float, float]  # what the peer's 429 headers ask for, in seconds
    # requests a poll with nothing new needs: (own posts watched, mention terms) -> count
    idle_requests: Callable[[int, int], int]


IDLE_REQUESTS: dict[Platform, Callable[[int, int], int]] = {
    # author feed, one thread per own post, notifications, one search per term
    Platform.BLUESKY: lambda posts, terms: 1 + posts + 1 + terms,
    # own statuses, one context per own post, notifications, one search per term
    Platform.MASTODON: lambda posts, terms: 1 + posts + 1 + terms,
    # submissions, one thread per own post, inbox, one search for all terms, and the
    # moderated subreddit's new comments and new posts
    Platform.REDDIT: lambda posts, terms: 1 + posts + 1 + 1 + 2,
}


@pytest.fixture
def bluesky_schools(bluesky_harness: BlueskyHarness) -> Iterator[TwoSchools]:
    first = bluesky_harness
    second = BlueskyHarness(first.peer)
    harnesses = (first, second)

    def settle() -> None:
        first.wait_indexed()
        second.wait_indexed()

    yield TwoSchools(
        refs=(first.account(), second.account()),
        post=lambda n, text: harnesses[n].own_post(text),
        reply=first.reply,
        settle=settle,
        fail_with_429=lambda: first.fail_next("ratelimit"),
        requests=first.request_count,
        classes=connector_class,
        retry_after=(38.0, 43.0),  # ratelimit-reset: 42 s ahead
        idle_requests=IDLE_REQUESTS[Platform.BLUESKY],
    )
    second.close()


@pytest.fixture
def mastodon_schools(mastodon_harness: MastodonHarness) -> TwoSchools:
    h = mastodon_harness

    class Counted(MastodonConnector):
        """The real connector on the harness's counting HTTP session."""

        def __init__(self, account: AccountRef) -> None:
            super().__init__(
                account, session=h.session, sleep=h.sleeps.append, rng=random.Random(7)
            )

    return TwoSchools(
        refs=(h.account_ref(), h.account_ref(username=STAFF)),
        post=lambda n, text: h.own_post(text) if n == 0 else h.post_as(STAFF, text),
        reply=h.reply,
        settle=h.wait_indexed,
        fail_with_429=lambda: h.fail_next("ratelimit"),
        requests=h.request_count,
        classes=lambda _platform: Counted,
        retry_after=(240.0, 301.0),  # X-RateLimit-Reset: 300 s ahead
        idle_requests=IDLE_REQUESTS[Platform.MASTODON],
    )


@pytest.fixture
def reddit_schools(reddit_harness: RedditHarness) -> TwoSchools:
    h = reddit_harness
    second = "RiversideAcademy"
    h.server.state.add_user(second, SCHOOL_PASSWORD)

    def post(n: int, text: str) -> str:
        return h.own_post(text) if n == 0 else h.post(second, text, subreddit=ELSEWHERE)

    return TwoSchools(
        refs=(h.account(), h.account(handle=second)),
        post=post,
        reply=h.reply,
        settle=h.wait_indexed,
        fail_with_429=lambda: h.fail_next("ratelimit"),
        requests=h.request_count,
        classes=connector_class,
        retry_after=(7.0, 7.0),  # Retry-After: 7
        idle_requests=IDLE_REQUESTS[Platform.REDDIT],
    )


def _marks(platform: Platform) -> tuple[Any, ...]:
    found = contract_harness(platform.value)
    return found.marks if found else ()


# Every registered platform, with its harness's marks: a new one needs a <platform>_schools
# fixture here and an IDLE_REQUESTS row, or these tests fail for it.
PEERS = [
    pytest.param(platform, marks=_marks(platform), id=platform.value) for platform in manifests()
]


@pytest.fixture(params=PEERS)
def peer(request: pytest.FixtureRequest) -> TwoSchools:
    platform: Platform = request.param
    schools: TwoSchools = request.getfixturevalue(f"{platform.value}_schools")
    return schools


def configure(sessions: sessionmaker[Session], peer: TwoSchools) -> ConnectorPool:
    """Both schools' accounts in the example configuration, synced; their pool of connectors."""
    accounts, environ = [], {}
    for (key, school, admins), ref in zip(SCHOOLS, peer.refs, strict=True):
        credentials = {}
        for name, value in ref.credentials.items():
            variable = f"{key}_{name}".upper()
            environ[variable] = value
            credentials[name] = SecretRef(env=variable)
        accounts.append(
            Account(
                key=key,
                platform=ref.platform,
                handle=ref.handle,
                school=school,
                admins=list(admins),
                options=dict(ref.options),
                credentials=credentials,
            )
        )
    config = load_config(EXAMPLE_CONFIG, environ={}).config.model_copy(
        update={"accounts": accounts}
    )
    with transaction(sessions) as session:
        apply_config(session, config, now=utcnow())
    return ConnectorPool(environ=environ, classes=peer.classes)


def stored(sessions: sessionmaker[Session], key: str) -> set[str]:
    with sessions() as session:
        rows = session.scalars(
            select(t.Item.platform_id).join(t.Account).where(t.Account.key == key)
        )
        return set(rows)


def total_items(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(t.Item)) or 0


def health(sessions: sessionmaker[Session], key: str) -> t.AccountHealth:
    with sessions() as session:
        account = session.scalars(select(t.Account).where(t.Account.key == key)).one()
        row = session.get(t.AccountHealth, account.id)
        assert row is not None
        return row


def terms_of(sessions: sessionmaker[Session], key: str) -> list[str]:
    with sessions() as session:
        account = session.scalars(select(t.Account).where(t.Account.key == key)).one()
        return mention_terms(account.school)


def polled(
    sessions: sessionmaker[Session], peer: TwoSchools, pool: ConnectorPool, key: str, at: datetime
) -> tuple[PollOutcome, int]:
    """Poll one account; the outcome and the requests the peer saw."""
    before = peer.requests()
    outcome = poll_account(sessions, key, pool, at)
    return outcome, peer.requests() - before


def test_polling_twice_with_nothing_new_stores_nothing_and_costs_only_the_cursor(
    sessions: sessionmaker[Session], peer: TwoSchools
) -> None:
    pool = configure(sessions, peer)
    post = peer.post(0, "Our choir sings at the town hall on Friday")
    first_reply = peer.reply(post, "What time does it start?")
    peer.settle()
    start = utcnow()
    try:
        first, _ = polled(sessions, peer, pool, "oak", start)
        assert first.ok, first.error
        assert {post, first_reply} <= stored(sessions, "oak")
        items = total_items(sessions)

        again, sent = polled(sessions, peer, pool, "oak", start + timedelta(minutes=5))
        assert again.ok and again.new_item_ids == () and total_items(sessions) == items
        assert sent == again.requests == peer.idle_requests(1, len(terms_of(sessions, "oak")))

        # a reply seen by two streams (the thread and the notifications) is stored once
        second_reply = peer.reply(post, "And is there parking?")
        peer.settle()
        third, _ = polled(sessions, peer, pool, "oak", start + timedelta(minutes=10))
        assert third.ok and len(third.new_item_ids) == 1
        assert stored(sessions, "oak") - {post, first_reply} >= {second_reply}
        assert total_items(sessions) == items + 1
    finally:
        pool.close()


def test_a_429_pauses_that_account_until_the_retry_time_and_the_other_keeps_polling(
    sessions: sessionmaker[Session], peer: TwoSchools
) -> None:
    pool = configure(sessions, peer)
    posts = [peer.post(n, f"Sports day news from school {n}") for n in (0, 1)]
    peer.settle()
    start = utcnow()
    try:
        assert all(polled(sessions, peer, pool, key, start)[0].ok for key in ("oak", "river"))
        waiting = peer.reply(posts[0], "Is it still on if it rains?")
        other = peer.reply(posts[1], "Which field is it on?")
        peer.settle()

        peer.fail_with_429()
        at = start + timedelta(minutes=5)
        limited, sent = polled(sessions, peer, pool, "oak", at)
        assert limited.error_kind == "rate_limited" and sent == 1  # a 429 is never retried
        paused_until = health(sessions, "oak").paused_until
        assert paused_until is not None
        low, high = peer.retry_after
        assert low <= (paused_until - at).total_seconds() <= high  # the peer's own retry time
        assert waiting not in stored(sessions, "oak")

        kept, _ = polled(sessions, peer, pool, "river", at)
        assert kept.ok and other in stored(sessions, "river")  # the other school is unaffected
        assert health(sessions, "river").consecutive_failures == 0

        skipped, sent = polled(sessions, peer, pool, "oak", paused_until - timedelta(seconds=1))
        assert skipped.skipped and sent == 0

        resumed, _ = polled(sessions, peer, pool, "oak", paused_until + timedelta(seconds=1))
        assert resumed.ok and waiting in stored(sessions, "oak")
        assert health(sessions, "oak").paused_until is None
    finally:
        pool.close()
