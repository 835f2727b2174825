"""Bluesky (AT Protocol) connector, built on the ``atproto`` client library.

With an app password the connector logs in once and keeps the session string
in a session store: the core's (``use_session_store``: encrypted in the database,
shared by every process, so ``poll --once`` from cron imports it instead of
calling createSession), else one per process. The library refreshes the access
token before it expires and every refresh is stored; when a refresh is refused
(another process already used the refresh token), the stored session is read
again before logging in. Without credentials it
reads the public AppView: own posts, replies and search, nothing else.

Cursors are opaque JSON strings owned by this module. Listings on Bluesky run
newest first, so each newest-first stream remembers the newest sort time it
has delivered plus the URIs it has seen within an overlap window behind it:
late-indexed posts inside the window are caught, seen ones are never repeated,
and a backlog longer than ``max_pages`` continues on the next poll.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from connectors.bluesky.manifest import MANIFEST

if TYPE_CHECKING:
    from connectors.bluesky.connector import BlueskyConnector
    from connectors.bluesky.session import MemorySessionStore

__all__ = ["MANIFEST", "BlueskyConnector", "MemorySessionStore"]

# Imported on first use, so that reading the manifest does not import atproto.
_LAZY = {
    "BlueskyConnector": "connectors.bluesky.connector",
    "MemorySessionStore": "connectors.bluesky.session",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
