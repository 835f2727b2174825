"""What a platform declares once: label, credentials, options, loggers, capabilities, library.

Each connector package has a ``manifest`` module holding a ``MANIFEST`` and importing no
platform library, so the configuration check, the digest, logging and the test suite can
read every platform's manifest without the libraries installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec

from connectors.base import Capability
from monitor.constants import Platform


@dataclass(frozen=True)
class Manifest:
    """One platform's declaration."""

    platform: Platform
    label: str  # as people read it: "Bluesky"
    connector: str  # "module:Class", imported only when the platform is used
    capabilities: frozenset[Capability]
    #: secret fields of an account's ``credentials`` (empty: can run read-only without any)
    required_credentials: frozenset[str] = frozenset()
    optional_credentials: frozenset[str] = frozenset()
    #: the account ``options`` the connector reads (any other name is a configuration error)
    options: frozenset[str] = frozenset()
    #: the platform library's loggers, kept at WARNING (they log URLs and headers at DEBUG)
    loggers: tuple[str, ...] = ()
    #: the import names of the libraries the connector needs (from the pip extra ``extra``)
    libraries: tuple[str, ...] = ()

    @property
    def credentials(self) -> frozenset[str]:
        """Every credential name the platform understands."""
        return self.required_credentials | self.optional_credentials

    @property
    def extra(self) -> str:
        """The optional-dependency group that installs the libraries."""
        return self.platform.value

    def missing_libraries(self) -> tuple[str, ...]:
        """The libraries that are not installed (none: the connector can be imported)."""
        return tuple(name for name in self.libraries if find_spec(name) is None)

    def install_hint(self) -> str:
        """What to tell someone whose install lacks the libraries."""
        missing = ", ".join(self.missing_libraries()) or ", ".join(self.libraries)
        return (
            f"the {self.label} connector needs {missing}: "
            f"pip install 'school-social-monitor[{self.extra}]'"
        )
