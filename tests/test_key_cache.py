"""Verified keys are remembered briefly, by digest, and forgotten after their time."""

import time

from billing.auth.cache import KeyCache
from billing.auth.models import Role
from billing.auth.service import Principal


def test_a_key_is_remembered_until_its_time_runs_out():
    cache = KeyCache(ttl=0.2)
    who = Principal(1, Role.INGEST, None)
    assert cache.remembered("bk_x") is None
    cache.remember("bk_x", who)
    assert cache.remembered("bk_x") == who
    assert cache.remembered("bk_y") is None
    assert "bk_x" not in repr(cache._entries)  # stored by digest only
    time.sleep(0.25)
    assert cache.remembered("bk_x") is None


def test_zero_seconds_means_no_memory():
    cache = KeyCache(ttl=0)
    cache.remember("bk_x", Principal(1, Role.ADMIN, None))
    assert cache.remembered("bk_x") is None
