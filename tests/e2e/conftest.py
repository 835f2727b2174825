"""The peers' harness fixtures, shared with the connector tests."""

from tests.connectors.harness_bluesky import bluesky_harness  # noqa: F401
from tests.connectors.harness_mastodon import mastodon_harness_fixture  # noqa: F401
