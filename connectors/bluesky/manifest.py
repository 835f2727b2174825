"""The Bluesky platform's manifest (imports no platform library)."""

from __future__ import annotations

from connectors.base import Capability
from connectors.manifest import Manifest
from monitor.constants import Platform

MANIFEST = Manifest(
    platform=Platform.BLUESKY,
    label="Bluesky",
    connector="connectors.bluesky.connector:BlueskyConnector",
    capabilities=frozenset(
        {
            Capability.OWN_POSTS,
            Capability.REPLIES,
            Capability.NOTIFICATIONS,
            Capability.MENTIONS,
            Capability.HIDE,
            Capability.UNHIDE,
            Capability.BLOCK,
            Capability.MUTE,
            Capability.REPORT,
            Capability.REPLY,
            Capability.DELETE_OWN,
        }
    ),
    # without an app password the connector reads the public AppView, read-only
    optional_credentials=frozenset({"app_password"}),
    options=frozenset(
        {
            "service_url",
            "public_url",
            "search_lang",
            "timeout",
            "retries",
            "page_size",
            "max_pages",
            "max_threads_per_poll",
            "overlap_seconds",
            "backfill_days",
            "report_service_did",
        }
    ),
    loggers=(),  # atproto logs nothing itself; its HTTP goes through httpx, quiet already
    libraries=("atproto",),
)
