"""The explicit list of built-in connectors (imported lazily: each pulls in its library)."""

from __future__ import annotations

from importlib import import_module

from connectors.base import Connector
from monitor.constants import Platform

BUILTIN: dict[Platform, str] = {
    Platform.BLUESKY: "connectors.bluesky:BlueskyConnector",
    Platform.MASTODON: "connectors.mastodon:MastodonConnector",
    Platform.REDDIT: "connectors.reddit:RedditConnector",
}


def connector_class(platform: Platform) -> type[Connector]:
    """The connector class for ``platform``."""
    module_name, _, class_name = BUILTIN[platform].partition(":")
    cls = getattr(import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise TypeError(f"{BUILTIN[platform]} is not a Connector")
    return cls
