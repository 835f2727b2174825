"""Acting on Mastodon: report, block, mute, reply, delete own, admin remove/approve."""

from __future__ import annotations

import uuid
from typing import Any

from connectors.base import (
    Author,
    Capability,
    Item,
    NotSupported,
)
from connectors.mastodon.convert import MAX_REPORT_COMMENT, REMOVE_ACTIONS, REPLY_VISIBILITIES, _sid
from connectors.mastodon.reading import MastodonReader
from monitor.constants import ItemKind


class MastodonModerator(MastodonReader):
    """The moderation actions."""

    def hide(self, item: Item) -> None:  # noqa: ARG002 - the connector interface
        """Mastodon cannot hide a reply under one's own post."""
        raise NotSupported(
            "Mastodon has no way to hide a reply: report it, block or mute the author, "
            "or remove it as instance admin"
        )

    def unhide(self, item: Item) -> None:  # noqa: ARG002 - the connector interface
        """Mastodon cannot hide replies, so nothing can be unhidden."""
        raise NotSupported("Mastodon has no way to hide or unhide a reply")

    def block(self, author: Author) -> None:
        """Block the author (idempotent, so retried on transient faults)."""
        self.require(Capability.BLOCK)
        self._not_self(author)
        self._read(lambda: self._api.account_block(author.id))

    def mute(self, author: Author) -> None:
        """Mute the author in the school's timelines, keeping their notifications."""
        self.require(Capability.MUTE)
        self._not_self(author)
        # Muted accounts vanish from the school's view of threads; muting their
        # notifications as well would blind the monitor to what they post next.
        self._read(lambda: self._api.account_mute(author.id, notifications=False))

    def report(self, item: Item, *, reason: str) -> str | None:
        """Report the status to our instance's moderators, forwarded to a remote author's server."""
        self.require(Capability.REPORT)
        self._not_self(item.author)
        report = self._file_report(item, reason=reason, category="other")
        return _sid(report["id"]) if report.get("id") is not None else None

    def _file_report(self, item: Item, *, reason: str, category: str) -> Any:
        # Not retried: a report is not idempotent and a duplicate burdens moderators.
        return self._call(
            lambda: self._api.report(
                item.author.id,
                status_ids=[item.platform_id],
                comment=reason[:MAX_REPORT_COMMENT],
                forward=self.report_forward,
                category=category,
            )
        )

    def reply(self, item: Item, text: str) -> Item:
        """Reply publicly (never wider than the parent) as the school; returns the new status."""
        self.require(Capability.REPLY)
        handle = item.author.handle
        body = text
        if (
            item.author.id != self._me_id
            and handle
            and f"@{handle}".casefold() not in text.casefold()
        ):
            body = f"@{handle} {text}"
        visibility = str(item.raw.get("visibility") or "public")
        if visibility not in REPLY_VISIBILITIES:
            visibility = "public"
        # The idempotency key makes a retried post land once.
        key = uuid.uuid4().hex
        status = self._read(
            lambda: self._api.status_post(
                body, in_reply_to_id=item.platform_id, visibility=visibility, idempotency_key=key
            )
        )
        return self._convert(lambda: self._item(status, ItemKind.POST, root_id=item.root_id))

    def delete_own(self, item: Item) -> None:
        """Delete a status the school's account wrote."""
        self.require(Capability.DELETE_OWN)
        if item.author.id != self.me_id:
            raise NotSupported("the school's account can only delete its own statuses")
        self._call(lambda: self._api.status_delete(item.platform_id))

    def remove(self, item: Item, *, spam: bool = False) -> None:
        """As instance admin: report the status, then close the report with an account action."""
        # Mastodon's API cannot delete another person's single status, so this
        # suspends (default) or limits the author on the school's instance, which
        # takes the status out of view there. The report carries the status as
        # evidence and is forwarded to a remote author's server when enabled.
        # Not atomic: if the action fails after the report, a retry files a second report.
        self.require(Capability.REMOVE)
        self._not_self(item.author)
        category = "spam" if spam else "other"
        report = self._file_report(
            item, reason="Removed by the school's moderators", category=category
        )
        report_id = report.get("id")
        self._read(
            lambda: self._api.admin_account_moderate(
                item.author.id,
                action=self.admin_remove_action,
                report_id=report_id,
                text="Removed by the school's moderators",
            )
        )

    def approve(self, item: Item) -> None:
        """Reverse ``remove``: lift the suspension or limit on the author."""
        self.require(Capability.APPROVE)
        undo = REMOVE_ACTIONS[self.admin_remove_action]
        if undo == "unsuspend":
            self._read(lambda: self._api.admin_account_unsuspend(item.author.id))
        else:
            self._read(lambda: self._api.admin_account_unsilence(item.author.id))

    def _not_self(self, author: Author) -> None:
        if author.id == self.me_id:
            raise NotSupported("the school's account cannot act against itself")

    def close(self) -> None:
        """Drop the HTTP session."""
        if self._api is not None and self._session is None:
            self._api.session.close()
        self._api = None
