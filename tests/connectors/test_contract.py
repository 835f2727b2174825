"""The connector contract: every registered connector passes this suite against its real peer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from connectors.base import (
    GONE_VISIBILITIES,
    AuthError,
    Capability,
    Connector,
    ConnectorError,
    Item,
    NotSupported,
    Page,
    RateLimited,
    TransientError,
    Visibility,
)
from connectors.registry import connector_class, manifest, manifests
from monitor.constants import ItemKind, Platform
from tests.connectors.harness import ContractHarness, PeerHarness, contract_harness

# Parametrised from the registry: every registered connector runs this suite on its peer.
HARNESSES: dict[Platform, ContractHarness | None] = {
    platform: contract_harness(platform.value) for platform in manifests()
}
for _platform, _found in HARNESSES.items():
    if _found is not None:  # pytest finds fixtures in the module's namespace, by name
        globals()[_found.name] = _found.fixture
PLATFORMS = [
    pytest.param(platform, marks=found.marks if found else (), id=platform.value)
    for platform, found in HARNESSES.items()
]
REPLIES = 7
POSTS = 5
PAGE = 2


@pytest.fixture(params=PLATFORMS)
def harness(request: pytest.FixtureRequest) -> PeerHarness:
    platform: Platform = request.param
    found = HARNESSES[platform]
    if found is None:
        pytest.fail(
            f"{platform.value} is registered but has no contract harness: "
            f"add tests/connectors/harness_{platform.value}.py with a {platform.value}_harness fixture"
        )
    peer: PeerHarness = request.getfixturevalue(found.name)
    assert peer.platform is platform
    return peer


def drain(poll: Callable[[str | None], Page], cursor: str | None) -> tuple[list[Item], str | None]:
    """Poll until the connector says no backlog remains; returns items and the last cursor."""
    items: list[Item] = []
    for _ in range(20):
        page = poll(cursor)
        items.extend(page.items)
        cursor = page.cursor
        if not page.more:
            return items, cursor
    raise AssertionError("the connector never finished its backlog")


def test_every_platform_has_a_registered_connector() -> None:
    assert set(manifests()) == set(Platform)
    for platform in Platform:
        declared = manifest(platform)
        cls = connector_class(platform)
        assert cls.PLATFORM is platform
        assert declared.required_credentials == cls.REQUIRED_CREDENTIALS, platform
        assert declared.optional_credentials == cls.OPTIONAL_CREDENTIALS, platform
        assert declared.capabilities == cls.CAPABILITIES, platform
        assert declared.options == cls.OPTIONS, platform


def test_every_registered_connector_has_a_contract_harness() -> None:
    missing = [platform.value for platform, found in HARNESSES.items() if found is None]
    assert missing == [], (
        f"registered connectors without tests/connectors/harness_<platform>.py: {missing}"
    )


def test_a_platform_without_a_harness_is_found_missing() -> None:
    # what makes the test above fail for a connector registered without its harness
    assert contract_harness("nosuchplatform") is None
    assert contract_harness("mastodon") is not None


def test_replies_page_and_resume_with_no_gap_and_no_duplicate(harness: PeerHarness) -> None:
    connector = harness.connector()
    post = harness.own_post("Our harvest festival raised £400 for the food bank. Thank you!")
    first_batch = {harness.reply(post, f"Well done everyone {n}") for n in range(REPLIES)}
    harness.wait_indexed()
    seen, cursor = drain(lambda c: connector.poll_replies([post], c), None)
    assert {i.platform_id for i in seen} >= first_batch
    assert len([i.platform_id for i in seen]) == len({i.platform_id for i in seen})
    assert all(
        i.kind is ItemKind.REPLY and i.created_at.tzinfo is not None
        for i in seen
        if i.platform_id in first_batch
    )
    # a fresh connector resumes from the stored cursor (as after a restart)
    second_batch = {harness.reply(post, f"Brilliant news {n}") for n in range(3)}
    harness.wait_indexed()
    resumed, cursor = drain(lambda c: harness.connector().poll_replies([post], c), cursor)
    assert {i.platform_id for i in resumed} == second_batch
    quiet, _ = drain(lambda c: connector.poll_replies([post], c), cursor)
    assert quiet == []


def test_own_posts_page_and_resume_with_no_gap_and_no_duplicate(harness: PeerHarness) -> None:
    # The cursor is taken before the posts: history from before monitoring began is not owed.
    start = harness.connector().poll_posts(None).cursor
    posted = [harness.own_post(f"Notice {n}: the summer fair is on Saturday") for n in range(POSTS)]
    harness.wait_indexed()
    seen: list[str] = []
    cursor, polls, more = start, 0, True
    while more:
        assert polls < 2 * POSTS, "the backlog never ended"
        connector = harness.paged_connector(PAGE)  # every poll as after a restart
        before = harness.request_count()
        page = connector.poll_posts(cursor)
        assert page.requests == harness.request_count() - before <= 1  # one page per poll
        assert len(page.items) <= PAGE
        assert all(i.kind is ItemKind.POST and i.is_own for i in page.items)
        seen += [i.platform_id for i in page.items]
        cursor, more, polls = page.cursor, page.more, polls + 1
    assert polls >= POSTS // PAGE + 1  # it really paged
    assert sorted(seen) == sorted(posted)  # no gap, no duplicate
    late = harness.own_post("Late notice: the fair starts at noon")
    harness.wait_indexed()
    connector = harness.paged_connector(PAGE)
    after_backlog = connector.poll_posts(cursor)
    assert [i.platform_id for i in after_backlog.items] == [late]
    before = harness.request_count()
    quiet = connector.poll_posts(after_backlog.cursor)
    assert quiet.items == () and quiet.requests == harness.request_count() - before == 1


def test_a_deleted_item_comes_back_as_gone(harness: PeerHarness) -> None:
    connector = harness.connector()
    post = harness.own_post("Reminder: parents' evening is on Thursday")
    reply = harness.reply(post, "Can I book a later slot?")
    harness.wait_indexed()
    assert connector.fetch(reply).visibility is Visibility.VISIBLE
    harness.delete(reply)
    harness.wait_indexed()
    assert connector.fetch(reply).visibility in GONE_VISIBILITIES


ACTIONS: dict[Capability, Callable[[Connector, Item], Any]] = {
    Capability.HIDE: lambda c, i: c.hide(i),
    Capability.UNHIDE: lambda c, i: c.unhide(i),
    Capability.REMOVE: lambda c, i: c.remove(i),
    Capability.APPROVE: lambda c, i: c.approve(i),
    Capability.BLOCK: lambda c, i: c.block(i.author),
    Capability.MUTE: lambda c, i: c.mute(i.author),
    Capability.REPORT: lambda c, i: c.report(i, reason="contract test"),
    Capability.REPLY: lambda c, i: c.reply(i, "contract test"),
    Capability.DELETE_OWN: lambda c, i: c.delete_own(i),
}


def test_unsupported_actions_raise_not_supported(harness: PeerHarness) -> None:
    connector = harness.connector()
    post = harness.own_post("Sports day is moved to Friday")
    reply_id = harness.reply(post, "Thanks for letting us know")
    harness.wait_indexed()
    item = connector.fetch(reply_id).item
    assert item is not None
    allowed = connector.granted
    assert allowed and allowed <= connector.CAPABILITIES  # worked out at connect()
    missing = [cap for cap in ACTIONS if cap not in allowed]
    before = harness.request_count()
    for capability in missing:
        with pytest.raises(NotSupported):
            ACTIONS[capability](connector, item)
    # deleting is allowed for the account's own posts only
    with pytest.raises(NotSupported):
        connector.delete_own(item)
    assert harness.request_count() == before  # refused without asking the platform
    if Capability.HIDE not in allowed:
        # the fallback the core uses where hiding is impossible must be there
        assert {Capability.REPORT, Capability.BLOCK} <= allowed


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("ratelimit", RateLimited),
        ("server_error", TransientError),
        pytest.param("timeout", TransientError, marks=pytest.mark.slow),  # waits out a timeout
        ("auth", AuthError),
    ],
)
def test_network_failures_become_our_errors(
    harness: PeerHarness, fault: Any, error: type[ConnectorError]
) -> None:
    connector = harness.connector()
    harness.fail_next(fault, count=10)  # more than any retry budget
    with pytest.raises(error) as caught:
        connector.poll_posts(None)
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after > 0
