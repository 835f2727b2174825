"""An in-memory platform behind the connector contract, for unit tests of the core.

It is not a stand-in for any library: the connectors are tested against real peers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from connectors.base import (
    AccountRef,
    AuthError,
    Author,
    Capability,
    Connector,
    Fetched,
    Item,
    NotSupported,
    Page,
    RateLimited,
    TransientError,
    Visibility,
)
from monitor.constants import ItemKind, Platform

PAGE_SIZE = 3


@dataclass
class FakePlatform:
    """Items per account handle, plus failures to raise on the next calls."""

    items: dict[str, list[Item]] = field(default_factory=dict)
    failures: dict[str, list[Exception]] = field(default_factory=dict)
    connects: int = 0
    requests: int = 0
    hidden: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (action, target) in order
    can_hide: bool = True

    def add(self, handle: str, text: str, at: datetime, *, kind: ItemKind = ItemKind.REPLY) -> Item:
        stream = self.items.setdefault(handle, [])
        item = Item(
            platform=Platform.BLUESKY,
            platform_id=f"{handle}/{len(stream) + 1}",
            kind=kind,
            url=f"https://example.test/{handle}/{len(stream) + 1}",
            author=Author(id="did:example:parent", handle="parent.test"),
            text=text,
            created_at=at + timedelta(seconds=len(stream)),
        )
        stream.append(item)
        return item

    def fail(self, handle: str, error: Exception) -> None:
        self.failures.setdefault(handle, []).append(error)


class FakeConnector(Connector):
    """Pages through FakePlatform's items; the cursor is the count already returned."""

    PLATFORM = Platform.BLUESKY
    CAPABILITIES = frozenset({Capability.NOTIFICATIONS})
    platform: FakePlatform  # set by ``bind``

    @classmethod
    def bind(cls, platform: FakePlatform) -> type[FakeConnector]:
        return type("BoundFakeConnector", (cls,), {"platform": platform})

    def __init__(self, account: AccountRef) -> None:
        super().__init__(account)

    def connect(self) -> frozenset[Capability]:
        self.platform.connects += 1
        self.granted = self.CAPABILITIES
        return self.granted

    def poll_notifications(self, cursor: str | None) -> Page:
        self.platform.requests += 1
        pending = self.platform.failures.get(self.account.handle)
        if pending:
            raise pending.pop(0)
        items = self.platform.items.get(self.account.handle, [])
        start = int(cursor or 0)
        chunk = items[start : start + PAGE_SIZE]
        end = start + len(chunk)
        return Page(tuple(chunk), str(end), more=end < len(items), requests=1)

    def fetch(self, platform_id: str) -> Fetched:
        if platform_id in self.platform.deleted:
            return Fetched(Visibility.DELETED)
        for item in self.platform.items.get(self.account.handle, []):
            if item.platform_id == platform_id:
                hidden = platform_id in self.platform.hidden
                return Fetched(Visibility.HIDDEN if hidden else Visibility.VISIBLE, item)
        return Fetched(Visibility.NOT_FOUND)

    def hide(self, item: Item) -> None:
        if not self.platform.can_hide:
            raise NotSupported("this platform cannot hide replies")
        self.platform.calls.append(("hide", item.platform_id))
        self.platform.hidden.add(item.platform_id)

    def report(self, item: Item, *, reason: str) -> str | None:
        self.platform.calls.append(("report", item.platform_id))
        return f"report-{len(self.platform.calls)}"

    def block(self, author: Author) -> None:
        self.platform.calls.append(("block", author.id))

    def poll_mentions(self, terms: Sequence[str], cursor: str | None) -> Page:
        return Page((), cursor)


ERRORS = {
    "ratelimit": RateLimited(120),
    "transient": TransientError("HTTP 503"),
    "auth": AuthError("bad app password"),
}
