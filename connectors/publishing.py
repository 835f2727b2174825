"""What a publisher is given and returns: platform-neutral, frozen, shared by the three platforms.

The platform code lives in ``bluesky_publish``, ``mastodon_publish`` and ``reddit_publish``;
each makes one idempotent attempt: called again with the same ``OutgoingPost.key`` after a
crash, a timeout or an error, it never puts a second copy on the platform.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class OutgoingImage:
    """One image: its bytes, type and alt text."""

    data: bytes
    media_type: str
    alt: str


@dataclass(frozen=True)
class OutgoingPost:
    """Exactly what one publication puts out, and the key that makes retries safe."""

    key: str  # the publication's idempotency key: stable across attempts
    serial: int  # the publication id (Bluesky derives its record keys from it)
    parts: tuple[str, ...]  # the thread, first post first
    images: tuple[OutgoingImage, ...] = ()  # on the first post
    title: str | None = None  # Reddit
    created_at: datetime | None = None  # when the post is stamped as written (first attempt)
    retry: bool = False  # an earlier attempt may have landed: look before posting again


@dataclass(frozen=True)
class Published:
    """Where the post is: one platform id per part, and the first part's URL."""

    ids: tuple[str, ...]
    url: str
    # the first part's id as the platform's reader names it, where that differs from ids[0]
    # (Reddit: the fullname "t3_abc" of submission "abc"); the own item is stored under it
    item_id: str | None = None

    @property
    def root_id(self) -> str:
        """The own item's platform id: the thread whose replies are watched."""
        return self.item_id or self.ids[0]


class PublishError(Exception):
    """A publication attempt failed; ``permanent`` ones are not retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


Progress = Callable[[Sequence[str]], None]


class Publisher(Protocol):
    """Publishes and withdraws posts on one account."""

    def publish(self, post: OutgoingPost, done: Sequence[str], progress: Progress) -> Published:
        """Put out the parts after ``done`` (ids of parts already out); ``progress`` is called
        with every id so far after each part, so a crash resumes where it stopped."""
        ...

    def withdraw(self, ids: Sequence[str]) -> None:
        """Delete the post's parts (last first)."""
        ...
