"""The Mastodon connector: the client, reading and moderation layers, declared by the manifest."""

from __future__ import annotations

from typing import ClassVar

from connectors.base import Capability
from connectors.mastodon.manifest import MANIFEST
from connectors.mastodon.moderation import MastodonModerator
from monitor.constants import Platform


class MastodonConnector(MastodonModerator):
    """A school's Mastodon account; admin actions where the school runs the instance."""

    PLATFORM: ClassVar[Platform] = MANIFEST.platform
    CAPABILITIES: ClassVar[frozenset[Capability]] = MANIFEST.capabilities
    REQUIRED_CREDENTIALS: ClassVar[frozenset[str]] = MANIFEST.required_credentials
    OPTIONAL_CREDENTIALS: ClassVar[frozenset[str]] = MANIFEST.optional_credentials
    OPTIONS: ClassVar[frozenset[str]] = MANIFEST.options
