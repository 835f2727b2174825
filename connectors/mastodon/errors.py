"""What Mastodon.py's errors carry: the HTTP status and the server's message."""

from __future__ import annotations

from mastodon.errors import (
    MastodonError,
)

# Mastodon.py's API errors carry (method, status, reason, message) in their args
_STATUS_ARG = 1
_MESSAGE_ARG = 3


def _status_of(exc: MastodonError) -> int | None:
    """The HTTP status Mastodon.py put in an API error's args, if any."""
    args = exc.args
    status = args[_STATUS_ARG] if len(args) > _STATUS_ARG else None
    return status if isinstance(status, int) else None


def _message_of(exc: MastodonError) -> str:
    args = exc.args
    if len(args) > _MESSAGE_ARG and args[_MESSAGE_ARG]:
        return str(args[_MESSAGE_ARG])[:200]
    return type(exc).__name__
