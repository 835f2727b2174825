"""An in-memory platform behind the connector contract, for unit tests of the core.

It is not a stand-in for any library: the connectors are tested against real peers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
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
    unsupported: set[str] = field(default_factory=set)  # actions that raise NotSupported
    # called with the action's name just before the platform acts (e.g. to look at the database)
    before_action: Callable[[str], None] | None = None

    def act(self, action: str, target: str) -> None:
        """Record one platform action, or refuse it like a platform without it."""
        if action in self.unsupported or (action == "hide" and not self.can_hide):
            raise NotSupported(f"this platform cannot {action}")
        if self.before_action is not None:
            self.before_action(action)
        self.calls.append((action, target))

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

    def engage(self, platform_id: str, **counts: int) -> None:
        """The platform's likes, reposts and replies on an item change (R15)."""
        for stream in self.items.values():
            for index, item in enumerate(stream):
                if item.platform_id == platform_id:
                    stream[index] = replace(item, engagement=counts)

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
        self.platform.act("hide", item.platform_id)
        self.platform.hidden.add(item.platform_id)

    def unhide(self, item: Item) -> None:
        self.platform.act("unhide", item.platform_id)
        self.platform.hidden.discard(item.platform_id)

    def remove(self, item: Item, *, spam: bool = False) -> None:
        self.platform.act("remove", item.platform_id)
        self.platform.deleted.add(item.platform_id)

    def report(self, item: Item, *, reason: str) -> str | None:
        self.platform.act("report", item.platform_id)
        return f"report-{len(self.platform.calls)}"

    def block(self, author: Author) -> None:
        self.platform.act("block", author.id)

    def mute(self, author: Author) -> None:
        self.platform.act("mute", author.id)

    def reply(self, item: Item, text: str) -> Item:
        self.platform.act("reply", item.platform_id)
        posted = self.platform.add(self.account.handle, text, item.created_at)
        school = Author(id="did:example:school", handle=self.account.handle)
        own = replace(posted, author=school, is_own=True, parent_id=item.platform_id)
        self.platform.items[self.account.handle][-1] = own
        return own

    def poll_mentions(self, terms: Sequence[str], cursor: str | None) -> Page:
        return Page((), cursor)


ERRORS = {
    "ratelimit": RateLimited(120),
    "transient": TransientError("HTTP 503"),
    "auth": AuthError("bad app password"),
}
