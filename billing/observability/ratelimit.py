"""A per-client rate limit kept in memory (per process): a token bucket per client IP.

Each client may send `per_minute` requests a minute, in bursts up to that many. The
client's address is the connection's peer; behind a proxy, run uvicorn with
`--proxy-headers --forwarded-allow-ips=<proxy>` (`billing serve` passes
BILLING_FORWARDED_ALLOW_IPS) so it is the real client's.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict

MAX_CLIENTS = 100_000


class RateLimiter:
    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        # float-ok: tokens left and when they were counted (monotonic seconds), per client
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, client: str) -> int:
        """0 when the request may go ahead; else how many seconds to wait."""
        if self.per_minute <= 0:
            return 0
        rate = self.per_minute / 60  # float-ok: tokens per second, not money
        now = time.monotonic()
        with self._lock:
            capacity = float(self.per_minute)  # float-ok: tokens, not money
            tokens, last = self._buckets.pop(client, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * rate)
            if tokens >= 1:
                self._buckets[client] = (tokens - 1, now)
                waited = 0
            else:
                self._buckets[client] = (tokens, now)
                waited = max(1, math.ceil((1 - tokens) / rate))
            while len(self._buckets) > MAX_CLIENTS:
                self._buckets.popitem(last=False)  # forget the least recently seen
        return waited
