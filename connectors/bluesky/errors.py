"""Translating atproto and httpx errors onto the connector errors."""

from __future__ import annotations

from datetime import UTC, datetime
from http import HTTPStatus

import httpx
from atproto.exceptions import (
    BadRequestError,
    InvokeTimeoutError,
    LoginRequiredError,
    ModelError,
    NetworkError,
    RateLimitExceededError,
    RequestErrorBase,
    UnauthorizedError,
)

from connectors.base import (
    AuthError,
    ConnectorError,
    Gone,
    RateLimited,
    TransientError,
)

# Error names that mean the access token, not the app password, is the problem.
TOKEN_ERRORS = frozenset({"ExpiredToken", "InvalidToken"})
TAKEDOWN_ERRORS = frozenset({"RepoTakendown", "AccountTakedown"})
NOT_FOUND_ERRORS = frozenset(
    {"NotFound", "RecordNotFound", "RepoNotFound", "ProfileNotFound", "AccountNotFound"}
    | TAKEDOWN_ERRORS
    | {"RepoDeactivated", "AccountDeactivated"}
)


def _translate(exc: BaseException) -> ConnectorError:
    """Map an atproto or httpx error onto the connector errors."""
    if isinstance(exc, ConnectorError):
        return exc
    if isinstance(exc, RateLimitExceededError):
        return RateLimited(_retry_after(exc), f"Bluesky rate limit: {exc}")
    if isinstance(exc, (InvokeTimeoutError, NetworkError, httpx.HTTPError)):
        # atproto wraps the httpx error it met: name that one
        cause = exc if isinstance(exc, httpx.HTTPError) else (exc.__cause__ or exc)
        return TransientError(f"Bluesky network error: {type(cause).__name__}: {cause}")
    if isinstance(exc, LoginRequiredError):
        return AuthError("Bluesky session missing: log in again")
    if isinstance(exc, UnauthorizedError):
        return AuthError(f"Bluesky refused the credentials: {exc}")
    if isinstance(exc, RequestErrorBase) and exc.response is not None:
        return _translate_response(exc, exc.response.status_code)
    if isinstance(exc, ModelError):
        return TransientError(f"Bluesky sent an unexpected response: {exc}")
    return ConnectorError(f"Bluesky error: {type(exc).__name__}: {exc}")


def _translate_response(exc: RequestErrorBase, status: int) -> ConnectorError:
    """A request the server answered with an error ``status``."""
    if _not_found(exc):
        return Gone(f"Bluesky: {exc}")
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return TransientError(f"Bluesky server error: {exc}")
    if _error_name(exc) in TOKEN_ERRORS:
        return AuthError(f"Bluesky session rejected: {exc}")
    return ConnectorError(f"Bluesky request failed: {exc}")


def _error_name(exc: BaseException) -> str | None:
    if isinstance(exc, RequestErrorBase) and exc.response is not None:
        content = exc.response.content
        name = getattr(content, "error", None)
        return str(name) if name else None
    return None


def _error_message(exc: BaseException) -> str:
    if isinstance(exc, RequestErrorBase) and exc.response is not None:
        return str(getattr(exc.response.content, "message", "") or "")
    return ""


def _token_problem(exc: BaseException) -> bool:
    """The access token (not the password) was refused: refreshing can help."""
    if isinstance(exc, LoginRequiredError):
        return True
    return isinstance(exc, BadRequestError) and _error_name(exc) in TOKEN_ERRORS


def _not_found(exc: RequestErrorBase) -> bool:
    if exc.response is None or exc.response.status_code not in (400, 404):
        return False
    if _error_name(exc) in NOT_FOUND_ERRORS:
        return True
    message = _error_message(exc).lower()
    return "not found" in message or "could not find" in message or "could not locate" in message


def _retry_after(exc: RateLimitExceededError) -> float:
    if exc.retry_after is not None:
        return float(exc.retry_after)
    reset_at: datetime | None = exc.reset_at
    if reset_at is not None:
        return max(0.0, (reset_at - datetime.now(UTC)).total_seconds())
    return 60.0  # no hint: the smallest Bluesky rate-limit window is minutes long
