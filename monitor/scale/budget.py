"""Token buckets in Redis, one per budget scope, shared by every worker.

A poll asks before it starts (``wait``: 0 when the bucket has a token) and is charged the
requests it made afterwards (``charge``), so a poll of many pages may leave the bucket in
debt and the next polls on it wait until the debt is refilled. The clock is Redis's own,
the same for every worker.
"""

from __future__ import annotations

from typing import Any

from monitor.rules.rate_budgets import Budget

# KEYS[1] the bucket; ARGV: rate per second, burst, cost (0: only ask). Returns the seconds
# to wait (0 when the caller may go on), as a string (Lua numbers lose their fraction).
_SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
tokens = tokens - cost
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
if tokens >= 1 or cost > 0 then
  return '0'
end
return tostring((1 - tokens) / rate)
"""


class Buckets:
    """The shared buckets under ``prefix`` in one Redis."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(_SCRIPT)

    def wait(self, name: str, budget: Budget) -> float:
        """Seconds until a request may be made on ``name`` (0: now)."""
        return self._run(name, budget, 0)

    def charge(self, name: str, budget: Budget, requests: int) -> None:
        """Take ``requests`` made from the bucket (it may go into debt)."""
        if requests > 0:
            self._run(name, budget, requests)

    def _run(self, name: str, budget: Budget, cost: int) -> float:
        answer = self._script(
            keys=[f"{self._prefix}:budget:{name}"],
            args=[budget.rate, budget.requests, cost],
        )
        text = answer.decode() if isinstance(answer, bytes) else str(answer)
        return float(text)
