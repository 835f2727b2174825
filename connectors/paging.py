"""Paging cursors: the one way connectors write and read the opaque cursor strings they own.

A cursor is a JSON object (sorted keys, no spaces), optionally behind a prefix or carrying a
version field, so cursors stored by earlier releases stay readable. ``load`` raises
``UnreadableCursor`` (a ``ConnectorError``) for anything else; a connector that prefers to
start over calls ``load_or_start``, which logs a warning and returns an empty state.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.base import ConnectorError

log = logging.getLogger(__name__)

VERSION_KEY = "v"


class UnreadableCursor(ConnectorError):
    """A stored cursor that is not one this format wrote."""


@dataclass(frozen=True)
class CursorFormat:
    """How one connector spells its cursors: ``prefix`` + JSON, with ``{"v": version}`` if set."""

    name: str  # named in errors and warnings, e.g. "mastodon"
    prefix: str = ""
    version: int | None = None

    def dump(self, state: Mapping[str, Any]) -> str:
        """The cursor string for ``state`` (a JSON-serialisable mapping)."""
        body = dict(state) if self.version is None else {VERSION_KEY: self.version, **state}
        return self.prefix + json.dumps(body, separators=(",", ":"), sort_keys=True)

    def load(self, cursor: str | None) -> dict[str, Any]:
        """The state in ``cursor``; an empty state for none. Raises ``UnreadableCursor``."""
        if not cursor:
            return {}
        if not cursor.startswith(self.prefix):
            raise UnreadableCursor(f"unreadable {self.name} cursor")
        try:
            state = json.loads(cursor[len(self.prefix) :])
        except ValueError as exc:
            raise UnreadableCursor(f"unreadable {self.name} cursor") from exc
        if not isinstance(state, dict):
            raise UnreadableCursor(f"unreadable {self.name} cursor")
        if self.version is not None and state.get(VERSION_KEY) != self.version:
            raise UnreadableCursor(f"{self.name} cursor of an unknown version")
        return state

    def load_or_start(self, cursor: str | None, account: str) -> dict[str, Any]:
        """Like ``load``, but an unreadable cursor is logged and read as no cursor at all."""
        try:
            return self.load(cursor)
        except UnreadableCursor:
            log.warning("ignoring an unreadable %s cursor for %s", self.name, account)
            return {}
