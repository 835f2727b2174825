"""A sliding-window limit on sign-in attempts, per client address and per account name."""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from datetime import datetime, timedelta

WINDOW = timedelta(minutes=15)


class AttemptLimiter:
    """At most ``limit`` failed attempts per key in ``window``; in memory, one per process."""

    def __init__(self, limit: int, window: timedelta = WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[datetime]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _trim(self, key: str, now: datetime) -> deque[datetime]:
        failures = self._failures[key]
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def blocked(self, keys: list[str], now: datetime) -> bool:
        """Whether any of ``keys`` has used up its attempts."""
        with self._lock:
            return any(len(self._trim(key, now)) >= self.limit for key in keys)

    def failed(self, keys: list[str], now: datetime) -> None:
        """Count one failed attempt against each of ``keys``."""
        with self._lock:
            for key in keys:
                self._trim(key, now).append(now)

    def succeeded(self, keys: list[str]) -> None:
        """Forget the failures of ``keys`` after a successful sign-in."""
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
