"""The one error the delivery edge raises: what went wrong and whether to try again."""

from __future__ import annotations


class DeliveryError(Exception):
    """A Slack or email delivery failed; ``permanent`` says whether a retry can help."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        permanent: bool = False,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        # Seconds the remote side asked us to wait (Slack's Retry-After); None = our own backoff.
        self.retry_after = retry_after
        self.permanent = permanent
        # The remote error code when there is one ("channel_not_found", "535"), for the outbox log.
        self.code = code

    @property
    def retryable(self) -> bool:
        """True when trying again later can succeed."""
        return not self.permanent

    def __repr__(self) -> str:
        return (
            f"DeliveryError({self.message!r}, retry_after={self.retry_after!r}, "
            f"permanent={self.permanent!r}, code={self.code!r})"
        )
