"""Where Bluesky login sessions are kept: memory stores shared within a process."""

from __future__ import annotations

import hashlib
import threading


class MemorySessionStore:
    """A session store held in memory (tests, or one process reusing sessions)."""

    def __init__(self, value: str | None = None) -> None:
        self._value = value
        self.writes = 0  # how many times a session was stored (login or refresh)

    def get(self) -> str | None:
        """The stored session string, if any."""
        return self._value

    def set(self, value: str) -> None:
        """Keep a new or refreshed session string."""
        self._value = value
        self.writes += 1

    def __repr__(self) -> str:  # the session string is a credential
        return f"MemorySessionStore(stored={self._value is not None})"


# Without an injected store, connectors in one process share sessions per
# (service, identifier, password) so that a fresh connector per poll does not log in.
_PROCESS_STORES: dict[str, MemorySessionStore] = {}
_PROCESS_STORES_LOCK = threading.Lock()


def _process_store(service_url: str, identifier: str, password: str) -> MemorySessionStore:
    key = hashlib.sha256(
        "\0".join((service_url, identifier.lower(), password)).encode()
    ).hexdigest()
    with _PROCESS_STORES_LOCK:
        return _PROCESS_STORES.setdefault(key, MemorySessionStore())
