"""The Bluesky connector: the client, reading and moderation layers, declared by the manifest."""

from __future__ import annotations

from typing import ClassVar

from connectors.base import Capability
from connectors.bluesky.manifest import MANIFEST
from connectors.bluesky.moderation import BlueskyModerator
from monitor.constants import Platform


class BlueskyConnector(BlueskyModerator):
    """Bluesky through the PDS (app password) or the public AppView (read-only)."""

    PLATFORM: ClassVar[Platform] = MANIFEST.platform
    CAPABILITIES: ClassVar[frozenset[Capability]] = MANIFEST.capabilities
    REQUIRED_CREDENTIALS: ClassVar[frozenset[str]] = MANIFEST.required_credentials
    OPTIONAL_CREDENTIALS: ClassVar[frozenset[str]] = MANIFEST.optional_credentials
    OPTIONS: ClassVar[frozenset[str]] = MANIFEST.options
