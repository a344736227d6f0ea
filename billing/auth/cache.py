"""A short-lived, in-process memory of verified API keys.

Checking a key costs a database round trip on every request; with small ingestion requests
that is most of the work. Verified keys are remembered for `ttl` seconds (by digest, never in
clear), so a revoked key stops working within that time. `ttl = 0` turns the memory off.
"""

from __future__ import annotations

import threading
import time

from billing.auth.service import Principal, hash_key

MAX_ENTRIES = 10_000


class KeyCache:
    def __init__(self, ttl: float) -> None:  # float-ok: seconds
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Principal]] = {}  # float-ok: expiry times
        self._lock = threading.Lock()

    def remembered(self, key: str) -> Principal | None:
        """The principal of a key verified less than `ttl` seconds ago, if any."""
        if self.ttl <= 0:
            return None
        with self._lock:
            entry = self._entries.get(hash_key(key))
        return entry[1] if entry is not None and entry[0] > time.monotonic() else None

    def remember(self, key: str, principal: Principal) -> None:
        """Trust a key just verified against the database for `ttl` seconds."""
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[hash_key(key)] = (time.monotonic() + self.ttl, principal)
