"""The reddit platform's manifest (imports no platform library)."""

from __future__ import annotations

from connectors.base import Capability
from connectors.manifest import Manifest
from monitor.constants import Platform

MANIFEST = Manifest(
    platform=Platform.REDDIT,
    label="Reddit",
    connector="connectors.reddit.connector:RedditConnector",
    capabilities=frozenset(
        {
            Capability.OWN_POSTS,
            Capability.REPLIES,
            Capability.NOTIFICATIONS,
            Capability.MENTIONS,
            Capability.COMMUNITY,
            Capability.REMOVE,
            Capability.APPROVE,
            Capability.BLOCK,
            Capability.REPORT,
            Capability.REPLY,
            Capability.DELETE_OWN,
        }
    ),
    required_credentials=frozenset({"client_id", "client_secret", "password"}),
    options=frozenset(
        {
            "subreddits",
            "search_subreddits",
            "user_agent",
            "page_limit",
            "max_pages",
            "timeout",
            "oauth_url",
            "reddit_url",
            "short_url",
        }
    ),
    loggers=("prawcore",),
    libraries=("praw", "prawcore"),
)
