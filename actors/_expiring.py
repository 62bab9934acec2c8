"""A set whose keys expire: the memory behind both nonce judges, the
market's (``TakenNonces``) and the gateway's in-process store.

Keys live in time buckets of ``keep_ms / buckets``; a sweep drops whole
buckets older than ``keep_ms``, so each key lives between ``keep_ms`` and
``keep_ms`` + one bucket (never less), and the cost is per key, never a scan.

    >>> keys = ExpiringKeys(keep_ms=60_000, buckets=6)
    >>> keys.add(("k", "n1"), now=1_000_000)
    >>> ("k", "n1") in keys, len(keys)
    (True, 1)
    >>> keys.sweep(now=1_060_000); ("k", "n1") in keys      # within keep_ms + one bucket
    True
    >>> keys.sweep(now=1_080_000); ("k", "n1") in keys
    False
"""
from collections import deque

__all__ = ["ExpiringKeys"]


class ExpiringKeys:
    def __init__(self, keep_ms, buckets):
        self.keep_ms = keep_ms
        self.bucket_ms = max(1, keep_ms // buckets)
        self._seen = {}            # key -> bucket number
        self._buckets = deque()    # (bucket number, [keys]) oldest first

    def __len__(self):
        return len(self._seen)

    def __contains__(self, key):
        return key in self._seen

    def sweep(self, now):
        """Drop every bucket wholly older than ``keep_ms``."""
        limit = (now - self.keep_ms) // self.bucket_ms
        seen, buckets = self._seen, self._buckets
        while buckets and buckets[0][0] < limit:
            number, keys = buckets.popleft()
            for k in keys:
                if seen.get(k) == number:     # not forgotten, nor re-added later
                    del seen[k]

    def add(self, key, now):
        number = now // self.bucket_ms
        buckets = self._buckets
        if not buckets or buckets[-1][0] != number:
            buckets.append((number, []))
        self._seen[key] = number
        buckets[-1][1].append(key)

    def discard(self, key):
        self._seen.pop(key, None)
