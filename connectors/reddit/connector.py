"""The reddit connector: the client, reading and moderation layers, declared by the manifest."""

from __future__ import annotations

from typing import ClassVar

from connectors.base import Capability
from connectors.reddit.manifest import MANIFEST
from connectors.reddit.moderation import RedditModerator
from monitor.constants import Platform


class RedditConnector(RedditModerator):
    """Reddit via praw: own posts, replies, inbox, moderated communities, search."""

    PLATFORM: ClassVar[Platform] = MANIFEST.platform
    CAPABILITIES: ClassVar[frozenset[Capability]] = MANIFEST.capabilities
    REQUIRED_CREDENTIALS: ClassVar[frozenset[str]] = MANIFEST.required_credentials
    OPTIONAL_CREDENTIALS: ClassVar[frozenset[str]] = MANIFEST.optional_credentials
    OPTIONS: ClassVar[frozenset[str]] = MANIFEST.options
