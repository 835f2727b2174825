"""Each platform's request budget, shared by every worker, as data and a pure function.

Bluesky limits requests per IP address (3,000 per 5 minutes), Mastodon per account (300
per 5 minutes), Reddit per OAuth client id (100 per minute). Workers take from one token
bucket per scope (in Redis), so adding workers never trips a platform's limit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from monitor.constants import Platform


class Scope(StrEnum):
    """What one bucket is shared by."""

    IP = "ip"  # every account polled from one egress address
    ACCOUNT = "account"
    CLIENT = "client"  # every account using one OAuth client id


@dataclass(frozen=True)
class Budget:
    """``requests`` per ``per_seconds``, shared within ``scope``."""

    requests: int
    per_seconds: int
    scope: Scope

    @property
    def rate(self) -> float:
        """Tokens refilled per second."""
        return self.requests / self.per_seconds


# the published limits, with a margin of a tenth for the platform's own counting
BUDGETS: dict[Platform, Budget] = {
    Platform.BLUESKY: Budget(2700, 300, Scope.IP),
    Platform.MASTODON: Budget(270, 300, Scope.ACCOUNT),
    Platform.REDDIT: Budget(90, 60, Scope.CLIENT),
}


def bucket_name(platform: Platform, *, account_key: str, client_id: str | None, egress: str) -> str:
    """The bucket an account's requests are taken from (a client id is hashed, never stored)."""
    scope = BUDGETS[platform].scope
    if scope is Scope.IP:
        who = egress
    elif scope is Scope.CLIENT and client_id:
        who = hashlib.sha256(client_id.encode()).hexdigest()[:16]
    else:
        who = account_key
    return f"{platform.value}:{scope.value}:{who}"


def parse_overrides(text: str) -> dict[Platform, Budget]:
    """``"reddit=6000/60,mastodon=300/300"`` as budgets (a deployment with raised limits)."""
    found: dict[Platform, Budget] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, limit = part.partition("=")
        requests, _, seconds = limit.partition("/")
        platform = Platform(name.strip())
        found[platform] = Budget(int(requests), int(seconds), BUDGETS[platform].scope)
    return found
