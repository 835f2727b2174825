"""Where a newest-first reddit listing stands: the newest key returned and any owed gap."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Key = tuple[float, int]


def _key(data: Mapping[str, Any]) -> Key:
    """Newest-first order of a listing: creation second, then the base-36 id."""
    return (float(data.get("created_utc") or 0.0), int(str(data.get("id") or "0"), 36))


def _as_key(value: Sequence[Any]) -> Key:
    return (float(value[0]), int(value[1]))


class _Gap:
    """Items newer than ``lo`` and older than ``hi`` still owed; ``after`` pages to them."""

    def __init__(self, lo: Key | None, hi: Key, after: str | None) -> None:
        self.lo, self.hi, self.after = lo, hi, after

    def dump(self) -> list[Any]:
        return [list(self.lo) if self.lo else None, list(self.hi), self.after]

    @classmethod
    def load(cls, value: Any) -> _Gap | None:
        if not value:
            return None
        lo, hi, after = value
        return cls(_as_key(lo) if lo else None, _as_key(hi), after)


class _ListingCursor:
    """Where one newest-first listing stands: the newest key returned, and any gap."""

    def __init__(self, top: Key | None = None, gap: _Gap | None = None, *, started: bool) -> None:
        self.top, self.gap, self.started = top, gap, started

    def dump(self) -> dict[str, Any]:
        return {
            "top": list(self.top) if self.top else None,
            "gap": self.gap.dump() if self.gap else None,
        }

    @classmethod
    def load(cls, value: Any) -> _ListingCursor:
        if not isinstance(value, dict):
            return cls(started=False)
        top = _as_key(value["top"]) if value.get("top") else None
        return cls(top, _Gap.load(value.get("gap")), started=True)
