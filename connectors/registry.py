"""The built-in connectors: one manifest module per platform package.

Reading a manifest imports no platform library; ``connector_class`` imports the connector
(and its library) only when the platform is used, and says which extra to install if the
library is missing.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module

from connectors.base import Connector, ConnectorError
from connectors.manifest import Manifest
from monitor.constants import Platform

# One line per platform package (see "Adding a platform" in the README).
MANIFEST_MODULES: tuple[str, ...] = (
    "connectors.bluesky.manifest",
    "connectors.mastodon.manifest",
    "connectors.reddit.manifest",
)


class ConnectorUnavailable(ConnectorError):
    """The platform's library is not installed."""


@cache
def manifests() -> dict[Platform, Manifest]:
    """Every registered platform's manifest, in registration order."""
    found: dict[Platform, Manifest] = {}
    for module_name in MANIFEST_MODULES:
        manifest = import_module(module_name).MANIFEST
        if not isinstance(manifest, Manifest):
            raise TypeError(f"{module_name}.MANIFEST is not a Manifest")
        if manifest.platform in found:
            raise TypeError(f"{manifest.platform} is registered twice")
        found[manifest.platform] = manifest
    return found


def manifest(platform: Platform) -> Manifest:
    """The manifest of ``platform`` (KeyError if no connector is registered for it)."""
    return manifests()[platform]


def connector_class(platform: Platform) -> type[Connector]:
    """The connector class for ``platform``."""
    declared = manifest(platform)
    if declared.missing_libraries():
        raise ConnectorUnavailable(declared.install_hint())
    module_name, _, class_name = declared.connector.partition(":")
    cls = getattr(import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise TypeError(f"{declared.connector} is not a Connector")
    return cls
