"""The market's own record of the nonces it has taken: the final judge of
replays (SPEC section 4). The nonce store in front (in-process or Redis) is
a fast first filter; Redis can restart empty, evict or fail over, so the
market refuses a (player, nonce) it has already taken in the last window,
whatever the store said.

A tap is acceptable while ``|now - ts| <= max_skew_ms``, and ``ts`` may be
up to ``max_skew_ms`` ahead when it is taken: so an entry must live
``2 * max_skew_ms`` (plus slack) after it is taken. The market also refuses
a tap whose ``ts`` is outside the skew (``expired``) by itself, so the
record never has to remember more than that window. It is rebuilt from the
bet rows at start (they keep user, nonce and ``ts``).

The key is the player (uid), not the session key: bet rows keep the uid,
and nonces are 96 random bits, so an honest client never reuses one across
its sessions; refusing such a reuse is stricter than SPEC, never looser.

Safe under gevent without a lock: every Column runs in a greenlet on the
one event-loop thread, and ``check`` + ``take`` happen inside one
``Column.receive_batch`` with no blocking call between them, so no other
Column can run in between (greenlets switch only at blocking points).

    >>> t = TakenNonces(max_skew_ms=30_000)
    >>> t.check(7, "n1", ts=1_000_000, now=1_000_100)
    >>> t.take(7, "n1", now=1_000_100)
    >>> t.check(7, "n1", ts=1_000_000, now=1_030_000)
    'replay'
    >>> t.check(7, "n2", ts=1_000_000, now=1_040_000)
    'expired'
"""
from ._expiring import ExpiringKeys

__all__ = ["TakenNonces"]

#: room for the queue between the gateway's skew check and a Column
SLACK_MS = 5_000


class TakenNonces:
    def __init__(self, max_skew_ms=30_000, slack_ms=SLACK_MS):
        self.max_skew_ms = max_skew_ms
        self.skew = max_skew_ms + slack_ms
        self.keep_ms = 2 * self.skew
        # an entry lives at least keep_ms after it was taken
        self._keys = ExpiringKeys(self.keep_ms, buckets=8)
        self._bucket_ms = self._keys.bucket_ms
        self.replays = 0
        self.expired = 0

    def __len__(self):
        return len(self._keys)

    def check(self, user, nonce, ts, now):
        """None if the tap may be taken, else ``"expired"`` / ``"replay"``."""
        if abs(now - ts) > self.skew:
            self.expired += 1
            return "expired"
        if (user, nonce) in self._keys:
            self.replays += 1
            return "replay"
        return None

    def take(self, user, nonce, now):
        self._keys.sweep(now)
        self._keys.add((user, nonce), now)

    def forget(self, user, nonce):
        """A tap taken by a Column whose batch then failed: no bet carries it."""
        self._keys.discard((user, nonce))

    def load(self, rows, now):
        """``rows``: (user, nonce, placed ms) of recent bets, from the
        database at start; entries older than the window are skipped."""
        for user, nonce, placed in sorted(rows, key=lambda r: r[2]):
            if now - placed <= self.keep_ms:
                self.take(user, nonce, placed)
        self._keys.sweep(now)
