"""Mastodon connector (Mastodon.py 2.3.3) for a school's account, optionally on its own instance.

Reads: the account's own statuses, replies at any depth under them (status
context), mention notifications and a public search for the school's terms.
Acts: report (forwarded to the author's server), block, mute, reply, delete own
and, where the school runs the instance and the token may use the admin API,
moderator removal through an account action closing a report. Mastodon has no
way to hide a reply under one's own post, so ``hide`` is not offered.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from connectors.mastodon.manifest import MANIFEST

if TYPE_CHECKING:
    from connectors.mastodon.connector import MastodonConnector
    from connectors.mastodon.convert import html_to_text

__all__ = ["MANIFEST", "MastodonConnector", "html_to_text"]

# Imported on first use, so that reading the manifest does not import Mastodon.py.
_LAZY = {
    "MastodonConnector": "connectors.mastodon.connector",
    "html_to_text": "connectors.mastodon.convert",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
