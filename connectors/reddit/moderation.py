"""Acting on reddit: remove, approve, report, block, reply, delete own."""

from __future__ import annotations

from typing import Any

from connectors.base import (
    Author,
    Capability,
    Gone,
    Item,
    NotSupported,
    raw_json,
)
from connectors.reddit.convert import REPORT_REASON_MAX, _split
from connectors.reddit.reading import RedditReader
from monitor.constants import ItemKind


class RedditModerator(RedditReader):
    """The moderation actions."""

    # ------------------------------------------------------------ actions
    def _model(self, item: Item) -> Any:
        kind, id36 = _split(item.platform_id)
        return self.reddit.comment(id36) if kind == "t1" else self.reddit.submission(id36)

    def _subreddit_of(self, item: Item) -> str:
        data = item.raw.get("data") if isinstance(item.raw.get("data"), dict) else None
        name = (data or {}).get("subreddit")
        if name:
            return str(name)
        fetched = self.fetch(item.platform_id)
        if fetched.item is None:
            raise Gone(f"{item.platform_id} no longer exists")
        return str(fetched.item.raw["data"].get("subreddit") or "")

    def _require_moderator(self, capability: Capability, item: Item) -> None:
        self.require(capability)
        subreddit = self._subreddit_of(item)
        if subreddit.lower() not in self.moderated:
            raise NotSupported(
                f"reddit {self.account.handle!r} does not moderate r/{subreddit}: "
                f"cannot {capability.value} {item.platform_id}"
            )

    def remove(self, item: Item, *, spam: bool = False) -> None:
        """Remove as a moderator (only in a subreddit the account moderates)."""
        self._require_moderator(Capability.REMOVE, item)
        with self._errors(acting=True):
            self._model(item).mod.remove(spam=spam)

    def approve(self, item: Item) -> None:
        """Reverse a removal (only in a subreddit the account moderates)."""
        self._require_moderator(Capability.APPROVE, item)
        with self._errors(acting=True):
            self._model(item).mod.approve()

    def report(self, item: Item, *, reason: str) -> str | None:
        """Report to the subreddit's moderators; reddit returns no report id."""
        self.require(Capability.REPORT)
        with self._errors(acting=True):
            self._model(item).report(reason[:REPORT_REASON_MAX])
        return None

    def block(self, author: Author) -> None:
        """Block the author from the school's account."""
        self.require(Capability.BLOCK)
        if not author.handle or author.handle == "[deleted]":
            raise Gone("the author's account is deleted")
        with self._errors(acting=True):
            self.reddit.redditor(author.handle).block()

    def reply(self, item: Item, text: str) -> Item:
        """Reply publicly as the account."""
        self.require(Capability.REPLY)
        with self._errors(acting=True):
            made = self._model(item).reply(body=text)
        if made is None:
            raise Gone(f"reddit would not accept a reply to {item.platform_id}")
        fields = {k: v for k, v in vars(made).items() if not k.startswith("_")}
        fields["author"] = self.account.handle
        fields["subreddit"] = str(getattr(made.subreddit, "display_name", made.subreddit))
        fields.pop("replies", None)
        return self._item("t1", raw_json(fields), ItemKind.REPLY)

    def delete_own(self, item: Item) -> None:
        """Delete a post or comment the account itself wrote."""
        self.require(Capability.DELETE_OWN)
        if not item.is_own and item.author.handle.lower() != self.account.handle.lower():
            raise NotSupported(f"{item.platform_id} was not written by {self.account.handle!r}")
        with self._errors(acting=True):
            self._model(item).delete()
