"""Reddit, through praw 8 as a script app (the school's own account and OAuth client).

Reads go through ``praw.Reddit.request`` so the raw JSON reddit sent is kept as evidence
and paging stays under our control; actions use praw's models. Listings are newest-first
and an ``after``/``before`` anchor that has since been removed or deleted yields an empty
page, so cursors never rely on an anchor for new items: each poll reads from the top and
stops at the newest item already returned. A backlog larger than ``max_pages`` pages is
finished on later polls (``Page.more``) from a stored gap, re-walking from the top if the
gap's anchor has vanished.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from connectors.reddit.manifest import MANIFEST

if TYPE_CHECKING:
    from connectors.reddit.connector import RedditConnector

__all__ = ["MANIFEST", "RedditConnector"]

# Imported on first use, so that reading the manifest does not import praw.
_LAZY = {"RedditConnector": "connectors.reddit.connector"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
