"""How often one client may call an HTTP edge: moving windows of the ``limits`` library,
in this process's memory. Each replica counts on its own, by choice (issue 15): the limit
guards an edge against a runaway client, it is no quota to bill, so N replicas letting a
client through N times the rate is acceptable, and it costs no shared round trip per request
(``limits`` has no PostgreSQL store; Redis would be a new piece of infrastructure). Set
``BRUG_RATE_LIMIT`` per replica: the cluster's limit divided by the replicas behind the
balancer. What must hold across replicas is in PostgreSQL: login throttling, SMART ``jti``s,
idempotency keys.

A key is an authenticated client id, or for the token endpoint the client id an assertion
claims (or the source address). The edges answer a refusal with 429 and ``Retry-After``.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class RateLimiter:
    def __init__(self, limits: str, namespace: str) -> None:
        self.items: list[RateLimitItem] = parse_many(limits) if limits.strip() else []
        self.namespace = namespace
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, key: str) -> int | None:
        """Counts one request of ``key``; None if allowed, else the seconds to wait."""
        for item in self.items:
            if not self._limiter.test(item, self.namespace, key):
                reset = self._limiter.get_window_stats(item, self.namespace, key).reset_time
                return max(1, math.ceil(reset - time.time()))
        for item in self.items:
            self._limiter.hit(item, self.namespace, key)
        return None


class Throttled(Exception):
    """Over a client's rate limit: answer 429 with ``Retry-After``."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many requests; retry after {retry_after} s")
        self.retry_after = retry_after
