"""What Mastodon.py's errors carry: the HTTP status and the server's message."""

from __future__ import annotations

from mastodon.errors import (
    MastodonError,
)


def _status_of(exc: MastodonError) -> int | None:
    """The HTTP status Mastodon.py put in an API error's args, if any."""
    args = exc.args
    if len(args) >= 2 and isinstance(args[1], int):
        return args[1]
    return None


def _message_of(exc: MastodonError) -> str:
    args = exc.args
    if len(args) >= 4 and args[3]:
        return str(args[3])[:200]
    return type(exc).__name__
