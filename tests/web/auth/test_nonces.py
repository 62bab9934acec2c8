"""Replay protection: the in-process and the Redis nonce store, against a
real redis-server. Also the Redis session store, which shares the server."""
import time

import pytest
import redis

from tests.support import free_port, wait_until
from web.auth._nonces import MemoryNonceStore, RedisNonceStore
from web.auth._redis_sessions import RedisSessionStore, SessionRecord

NOW = 1_700_000_000_000
KEY_A = b"\x04" + b"\xaa" * 64
KEY_B = b"\x04" + b"\xbb" * 64


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        yield MemoryNonceStore(started_ms=NOW - 120_000)
    else:
        s = RedisNonceStore(request.getfixturevalue("redis_url"), started_ms=NOW - 120_000)
        yield s
        s.close()


def test_fresh_then_replay(store):
    assert store.check_many([(KEY_A, "nonce-0001", NOW)], NOW) == [None]
    assert store.check_many([(KEY_A, "nonce-0001", NOW)], NOW + 10) == ["replay"]
    # Same nonce under another key, and another nonce under the same key, are fresh.
    assert store.check_many([(KEY_B, "nonce-0001", NOW), (KEY_A, "nonce-0002", NOW)],
                            NOW + 20) == [None, None]
    assert store.stats.checked == 4 and store.stats.replays == 1 and store.stats.expired == 0


def test_replay_within_one_batch(store):
    batch = [(KEY_A, "dup-nonce", NOW), (KEY_B, "other-1", NOW), (KEY_A, "dup-nonce", NOW),
             (KEY_A, "dup-nonce", NOW)]
    assert store.check_many(batch, NOW) == [None, None, "replay", "replay"]
    assert store.stats.replays == 2


def test_expired_past_and_future(store):
    batch = [(KEY_A, "past-ok-1", NOW - 30_000), (KEY_A, "past-bad-1", NOW - 30_001),
             (KEY_A, "futu-ok-1", NOW + 30_000), (KEY_A, "futu-bad-1", NOW + 30_001)]
    assert store.check_many(batch, NOW) == [None, "expired", None, "expired"]
    assert store.stats.expired == 2
    # An expired tap was not recorded: once its ts is in range it is fresh.
    assert store.check_many([(KEY_A, "futu-bad-1", NOW + 30_001)], NOW + 1) == [None]


def test_empty_batch(store):
    assert store.check_many([], NOW) == []


def test_memory_store_refuses_taps_signed_before_start():
    store = MemoryNonceStore(started_ms=NOW)
    assert store.check_many([(KEY_A, "before-start", NOW - 1), (KEY_A, "at-start", NOW)],
                            NOW + 5) == ["expired", None]


def test_memory_store_forgets_after_ttl_and_stays_bounded():
    store = MemoryNonceStore(started_ms=0, ttl_ms=60_000, max_skew_ms=30_000)
    assert store.check_many([(KEY_A, "keep-me-1", NOW)], NOW) == [None]
    # Still remembered right up to the ttl.
    assert store.check_many([(KEY_A, "keep-me-1", NOW + 59_999)], NOW + 59_999) == ["replay"]
    # Well past the ttl the entry is gone (and a fresh ts makes it acceptable).
    later = NOW + 60_000 + 10_001
    assert store.check_many([(KEY_A, "keep-me-1", later)], later) == [None]
    # Steady traffic: memory holds about ttl worth of entries, not everything.
    t = later
    for i in range(600):
        t += 1_000
        store.check_many([(KEY_B, f"n-{i:06d}", t)], t)
    assert len(store) <= 60 + 10 + 1


def test_ttl_shorter_than_twice_the_skew_is_refused():
    with pytest.raises(ValueError):
        MemoryNonceStore(started_ms=0, ttl_ms=59_999, max_skew_ms=30_000)
    with pytest.raises(ValueError):
        RedisNonceStore("redis://127.0.0.1:1/0", ttl_s=1, max_skew_ms=30_000)


def test_redis_entries_expire_after_ttl(redis_url):
    store = RedisNonceStore(redis_url, ttl_s=1, max_skew_ms=500)
    r = redis.Redis.from_url(redis_url)
    try:
        now = int(time.time() * 1000)
        assert store.check_many([(KEY_A, "short-ttl", now)], now) == [None]
        assert store.check_many([(KEY_A, "short-ttl", now)], now) == ["replay"]
        assert len(r.keys("tapgrid:n:*")) == 1
        assert 0 < r.pttl(r.keys("tapgrid:n:*")[0]) <= 1000
        wait_until(lambda: not r.keys("tapgrid:n:*"), timeout=5, what="nonce key expiry")
        assert store.check_many([(KEY_A, "short-ttl", now)], now) == [None]
    finally:
        r.close()
        store.close()


def test_redis_store_shared_by_two_processes(redis_url):
    one, two = RedisNonceStore(redis_url), RedisNonceStore(redis_url)
    try:
        assert one.check_many([(KEY_A, "shared-01", NOW), (KEY_A, "shared-02", NOW)], NOW) == [None, None]
        assert two.check_many([(KEY_A, "shared-01", NOW), (KEY_A, "shared-03", NOW)], NOW) == ["replay", None]
        assert one.check_many([(KEY_A, "shared-03", NOW)], NOW) == ["replay"]
        assert one.stats.replays == 1 and two.stats.replays == 1
    finally:
        one.close()
        two.close()


def test_redis_store_sends_nothing_for_expired_taps(redis_url):
    store = RedisNonceStore(redis_url)
    r = redis.Redis.from_url(redis_url)
    try:
        assert store.check_many([(KEY_A, "too-old-1", NOW - 40_000)], NOW) == ["expired"]
        assert r.dbsize() == 0
    finally:
        r.close()
        store.close()


def test_redis_down_fails_closed():
    store = RedisNonceStore(f"redis://127.0.0.1:{free_port()}/0")
    try:
        out = store.check_many([(KEY_A, "no-redis-1", NOW), (KEY_A, "no-redis-2", NOW - 99_000)], NOW)
        assert out == ["overloaded", "expired"]
        assert store.stats.errors == 1
    finally:
        store.close()


# --- Redis sessions -------------------------------------------------------

def test_redis_session_create_get_revoke(redis_url):
    sessions = RedisSessionStore(redis_url)
    r = redis.Redis.from_url(redis_url)
    try:
        now = int(time.time() * 1000)
        key = b"\x04" + bytes(range(64))
        token = sessions.create("0xAbC0000000000000000000000000000000000001", key, now + 60_000)
        assert len(token) >= 22                           # >= 128 bits of base64url
        assert sessions.get(token, now)[:3] == SessionRecord(
            "0xAbC0000000000000000000000000000000000001", key, now + 60_000)[:3]
        # Only a hash of the token is stored, with an expiry at the session's end.
        names = r.keys("tapgrid:s:*")
        assert len(names) == 1 and token.encode() not in names[0]
        assert 0 < r.pttl(names[0]) <= 60_000
        # Expiry is enforced by get even before Redis drops the key.
        assert sessions.get(token, now + 60_000) is None
        other = sessions.create("someone", key, now + 60_000)
        assert other != token
        sessions.revoke(token)
        assert sessions.get(token, now) is None
        assert sessions.get(other, now).user == "someone"
        for bad in ["", "nope", "x" * 500, None, 5, token + "A"]:
            assert sessions.get(bad, now) is None
    finally:
        r.close()
        sessions.close()


def test_redis_session_expires_in_redis(redis_url):
    sessions = RedisSessionStore(redis_url)
    r = redis.Redis.from_url(redis_url)
    try:
        now = int(time.time() * 1000)
        token = sessions.create("u", b"\x04" + bytes(64), now + 200)
        assert sessions.get(token, now) is not None
        wait_until(lambda: r.dbsize() == 0, timeout=5, what="session key expiry")
        assert sessions.get(token, now) is None
    finally:
        r.close()
        sessions.close()
