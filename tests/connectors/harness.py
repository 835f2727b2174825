"""The peer harness every platform provides, so one contract suite covers them all.

Each platform's test module ``tests/connectors/harness_<platform>.py`` defines a
pytest fixture named ``<platform>_harness`` that yields an object of this shape,
backed by that platform's real local peer, and may set ``MARKS`` (the pytest marks its
peer tests carry). The contract suite finds them from the connector registry with
``contract_harness``, so a registered connector without a harness fails the suite.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any, Literal, Protocol

from connectors.base import Connector
from monitor.constants import Platform

FaultKind = Literal["ratelimit", "server_error", "timeout", "auth"]


class PeerHarness(Protocol):
    """Drives a local peer as the school's account and as members of the public."""

    platform: Platform

    def connector(self) -> Connector:
        """A fresh, connected connector for the school's account."""
        ...

    def paged_connector(self, size: int) -> Connector:
        """Like ``connector``, asking for ``size`` items per request and one page per poll."""
        ...

    def own_post(self, text: str) -> str:
        """The school's account posts ``text``; returns the platform id."""
        ...

    def reply(self, parent_id: str, text: str) -> str:
        """A member of the public replies to ``parent_id``; returns the platform id."""
        ...

    def mention(self, text: str) -> str:
        """A member of the public posts ``text`` publicly (no reply); returns the platform id."""
        ...

    def delete(self, platform_id: str) -> None:
        """The author deletes the item."""
        ...

    def fail_next(self, kind: FaultKind, *, count: int = 1) -> None:
        """Make the peer's next ``count`` responses to the connector fail like ``kind``."""
        ...

    def wait_indexed(self) -> None:
        """Block (polling with a timeout) until writes are visible to reads."""
        ...

    def request_count(self) -> int:
        """How many HTTP requests the connector has made to the peer so far."""
        ...


@dataclass(frozen=True)
class ContractHarness:
    """A platform's harness fixture as the contract suite needs it."""

    fixture: Any  # the pytest fixture object, to be placed in the test module's namespace
    name: str  # the fixture's name, ``<platform>_harness``
    marks: tuple[Any, ...]


def contract_harness(platform: str) -> ContractHarness | None:
    """The harness of ``platform`` (by the naming convention above), or None if it has none."""
    module_name = f"tests.connectors.harness_{platform}"
    try:
        module = import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise  # the harness exists but needs something missing: say so
        return None
    name = f"{platform}_harness"
    for value in vars(module).values():
        if callable(value) and getattr(value, "name", None) == name:
            return ContractHarness(value, name, tuple(getattr(module, "MARKS", ())))
    return None
