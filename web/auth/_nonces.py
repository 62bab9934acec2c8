"""Replay protection for taps (SPEC section 4): each (session key, nonce)
is taken once, and only while its ``ts`` is within ``max_skew_ms`` of now.

A nonce must be remembered for as long as a tap carrying it could still
pass the skew check: ts may be up to ``max_skew_ms`` ahead of the moment it
is first seen, and stays acceptable until ``max_skew_ms`` after ts. So the
stores refuse a ttl shorter than ``2 * max_skew_ms``; with the defaults (60 s
and 30 s) a replay can never outlive the memory of its nonce.

>>> store = MemoryNonceStore(started_ms=1_000_000)
>>> key = b"\\x04" + bytes(64)
>>> store.check_many([(key, "nonce-001", 1_000_500), (key, "nonce-001", 1_000_500),
...                   (key, "nonce-002", 1_000_000 - 1)], now_ms=1_000_600)
[None, 'replay', 'expired']
>>> store.stats.as_dict()
{'checked': 3, 'replays': 1, 'expired': 1, 'errors': 0}
"""
import base64

import redis

from actors import ExpiringKeys

__all__ = ["NonceStats", "MemoryNonceStore", "RedisNonceStore"]


class NonceStats:
    """Counters for /metrics; ``errors`` counts taps refused because the
    store could not be asked (Redis down)."""
    __slots__ = ("checked", "replays", "expired", "errors")

    def __init__(self):
        self.checked = self.replays = self.expired = self.errors = 0

    def as_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}


def _check_ttl(ttl_ms, max_skew_ms):
    if ttl_ms < 2 * max_skew_ms:
        raise ValueError(f"ttl ({ttl_ms} ms) must be at least twice the allowed "
                         f"skew ({max_skew_ms} ms), or a replay could outlive its nonce")


class MemoryNonceStore:
    """In-process store. Taps signed before ``started_ms`` (this process's
    start) are ``expired``: the nonces a previous process saw are gone, so
    nothing it could have taken is accepted again after a restart.

    Entries live in an ``actors.ExpiringKeys`` of ``ttl_ms`` (six buckets),
    swept on each call: the cost is per entry, never a scan."""

    def __init__(self, started_ms: int, ttl_ms=60_000, max_skew_ms=30_000):
        _check_ttl(ttl_ms, max_skew_ms)
        self.started_ms = started_ms
        self.ttl_ms = ttl_ms
        self.max_skew_ms = max_skew_ms
        self.stats = NonceStats()
        # an entry lives between ttl and ttl + one bucket: never less than the ttl
        self._keys = ExpiringKeys(ttl_ms, buckets=6)

    def __len__(self):
        return len(self._keys)

    def check_many(self, items, now_ms):
        """``items``: [(key_id bytes, nonce str, ts ms)]. Per item, None
        (fresh, now recorded) or ``"expired"`` / ``"replay"``."""
        keys = self._keys
        keys.sweep(now_ms)
        stats = self.stats
        skew, started = self.max_skew_ms, self.started_ms
        out = []
        for key_id, nonce, ts in items:
            if ts < started or abs(now_ms - ts) > skew:
                out.append("expired")
                stats.expired += 1
                continue
            k = (key_id, nonce)
            if k in keys:
                out.append("replay")
                stats.replays += 1
                continue
            keys.add(k, now_ms)
            out.append(None)
        stats.checked += len(items)
        return out


class RedisNonceStore:
    """Shared store: one pipelined round trip of ``SET key 1 NX EX ttl`` per
    batch, so several server processes see each other's nonces. The skew
    check runs locally first and expired taps never reach Redis.

    If Redis cannot be reached the batch's taps get ``"overloaded"``: the
    store fails closed, since an unchecked tap could be a replay.

    The epoch: Redis without persistence forgets every nonce when it
    restarts (a flush, an eviction or a failover does the same). The key
    ``tapgrid:n-epoch`` holds the ms at which the current memory began, set
    with NX when the server starts and again (NX) with every batch; if it is
    gone, the batch that notices starts a new epoch at its ``now``. Taps
    signed before the epoch are ``"expired"``, exactly as the in-process
    store refuses taps signed before the server started: whatever Redis
    forgot can no longer be taken. (The market keeps its own record too:
    actors/_taken.py.)"""

    def __init__(self, url, ttl_s=60, max_skew_ms=30_000, prefix="tapgrid:n:",
                 client=None, started_ms=None):
        _check_ttl(ttl_s * 1000, max_skew_ms)
        self.ttl_s = ttl_s
        self.max_skew_ms = max_skew_ms
        self.prefix = prefix
        self.stats = NonceStats()
        self._redis = client or redis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2)
        self._key_names = {}   # key_id -> encoded prefix; a session key taps many times
        self._epoch_key = prefix.rstrip(":") + "-epoch"    # outside the nonce keys
        self.epoch_ms = None
        if started_ms is not None:
            try:
                self._redis.set(self._epoch_key, started_ms, nx=True)
            except redis.RedisError:
                pass           # the first batch sets it, failing closed until then

    def _name(self, key_id, nonce):
        head = self._key_names.get(key_id)
        if head is None:
            if len(self._key_names) > 100_000:
                self._key_names.clear()
            head = (self.prefix + base64.urlsafe_b64encode(key_id).rstrip(b"=")
                    .decode("ascii") + ":")
            self._key_names[key_id] = head
        return head + nonce

    def check_many(self, items, now_ms):
        out = [None] * len(items)
        sent = []
        skew = self.max_skew_ms
        stats = self.stats
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(self._epoch_key, now_ms, nx=True)
        pipe.get(self._epoch_key)
        for i, (key_id, nonce, ts) in enumerate(items):
            if abs(now_ms - ts) > skew:
                out[i] = "expired"
                stats.expired += 1
            else:
                pipe.set(self._name(key_id, nonce), b"1", nx=True, ex=self.ttl_s)
                sent.append(i)
        stats.checked += len(items)
        if not sent:
            return out
        try:
            results = pipe.execute()
        except redis.RedisError:
            stats.errors += len(sent)
            for i in sent:
                out[i] = "overloaded"
            return out
        epoch = self.epoch_ms = int(results[1])
        # SET NX answers None when the key exists, also for a duplicate
        # earlier in this same pipeline.
        for i, ok in zip(sent, results[2:]):
            if items[i][2] < epoch:
                out[i] = "expired"
                stats.expired += 1
            elif not ok:
                out[i] = "replay"
                stats.replays += 1
        return out

    def close(self):
        self._redis.close()
