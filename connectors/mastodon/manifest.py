"""The Mastodon platform's manifest (imports no platform library)."""

from __future__ import annotations

from connectors.base import Capability
from connectors.manifest import Manifest
from monitor.constants import Platform

MANIFEST = Manifest(
    platform=Platform.MASTODON,
    label="Mastodon",
    connector="connectors.mastodon.connector:MastodonConnector",
    capabilities=frozenset(
        {
            Capability.OWN_POSTS,
            Capability.REPLIES,
            Capability.NOTIFICATIONS,
            Capability.MENTIONS,
            Capability.BLOCK,
            Capability.MUTE,
            Capability.REPORT,
            Capability.REPLY,
            Capability.DELETE_OWN,
            # only on the school's own instance, with an admin token (see connect)
            Capability.REMOVE,
            Capability.APPROVE,
            Capability.ADMIN,
        }
    ),
    required_credentials=frozenset({"access_token"}),
    options=frozenset(
        {
            "api_base_url",
            "allow_http",
            "admin",
            "admin_remove_action",
            "report_forward",
            "request_timeout",
            "page_size",
            "max_pages",
            "max_contexts",
            "reply_window_hours",
            "retry_attempts",
        }
    ),
    loggers=("mastodon",),
    libraries=("mastodon",),
)
