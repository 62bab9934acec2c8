"""What a gateway hears from the market without asking: the broadcasts
(ticks, grids, status) on pub/sub, the settlements on the results stream,
and whether the market is there at all (its heartbeat key).

``RemoteStatus`` is the market's status as last published, with one cause
of the gateway's own on top: ``overloaded`` while the market's heartbeat
is missing, so ``/healthz`` says 503 and clients are told at once.

    >>> st = RemoteStatus()
    >>> st.is_open, st.reason              # nothing heard yet
    (False, 'stale_price')
    >>> st.update({"status": "open", "reason": None}); st.is_open
    True
    >>> st.set_away(True); st.reason, st.reject_reason
    ('overloaded', 'overloaded')
"""
import logging
import time

import gevent

from .._model import Settlement
from .._status import Grid
from ._codec import decode_blob, loads
from ._redis import BLOCK_MS, Backoff, RedisError

__all__ = ["RemoteStatus", "Watcher", "grid_from_body"]

log = logging.getLogger("tapgrid.bus")
_STATE_ORDER = {b"k": 0, b"m": 1, b"g": 2, b"t": 3}
_REJECT = {"stale_price": "market_suspended", "disk_low": "disk_low", "overloaded": "overloaded"}


class RemoteStatus:
    def __init__(self):
        self._open = False
        self._reason = "stale_price"
        self.away = False
        self.changes = 0
        self._listeners = []

    @property
    def is_open(self):
        return self._open and not self.away

    @property
    def reason(self):
        return "overloaded" if self.away else self._reason

    @property
    def reject_reason(self):
        return _REJECT.get(self.reason, "market_suspended")

    def as_dict(self):
        return {"status": "open" if self.is_open else "suspended", "reason": self.reason}

    def update(self, d):
        self._open = d.get("status") == "open"
        self._reason = d.get("reason")
        self.changes += 1

    def set_away(self, away):
        if away != self.away:
            self.away = away
            self.changes += 1
            for fn in list(self._listeners):
                fn(self)

    def subscribe(self, fn):
        self._listeners.append(fn)


def grid_from_body(body, version):
    """A ``Grid`` back from the ``/api/grid`` body the market published."""
    d = loads(body)
    return Grid(version, d["price"], d["price_ts"], 0.0,
                {c["t0"]: {cell["lo"]: cell["mult"] for cell in c["cells"]} for c in d["columns"]})


class Watcher:
    """The gateway's three listening greenlets; ``sinks`` gets
    ``relay(kind, head, parts)`` and ``on_result(user, settlement, balance)``."""

    def __init__(self, remote):
        self.remote = remote
        self.keys = remote.keys
        self.r = remote.r
        self.relayed = 0
        self.results = 0
        self.resubscribes = 0
        self._state_read = 0.0
        self._stale = False              # a broadcast named a market not in our list
        self._heard_status = False       # the default market's status, since subscribing

    def start(self):
        return [gevent.spawn(self.broadcasts), gevent.spawn(self.settlements),
                gevent.spawn(self.heartbeat)]

    def _blob(self, data):
        kind, head, parts = decode_blob(data)
        remote = self.remote
        if kind == b"k":
            if remote.catalog.update(head):
                log.info("the market runs %s", ", ".join(remote.catalog.by_id))
        elif kind in (b"g", b"m"):
            # Blobs of a market process before several markets carry no id: the default's.
            mid = head.get("id")
            unit = remote.catalog.unit(mid)
            if unit is None and mid is not None:
                self._stale = True       # a market not in our list: read the state again
                return
            if kind == b"g":
                grid = grid_from_body(parts[0], head["v"])
                if unit is not None:
                    unit.ctx.grid = grid
                if unit is None or unit.market_id == remote.catalog.default_id:
                    remote.grid = grid
            else:
                (unit.ctx.status if unit is not None else remote.status).update(head)
                if unit is None or unit.market_id == remote.catalog.default_id:
                    self._heard_status = True
        elif kind == b"t":
            if head.get("a") in (None, remote.default_asset()):
                remote.last_tick = (head["p"], head["t"])
        self.relayed += 1
        sinks = remote.sinks
        if sinks is not None:
            sinks.relay(kind, head, parts)

    def _read_state(self):
        """The latest of each from ``Keys.state``: the market list first, then
        statuses, grids and ticks."""
        self._state_read = time.monotonic()
        self._stale = False
        state = self.r.hgetall(self.keys.state)
        for field in sorted(state, key=lambda f: _STATE_ORDER.get(f[:1], 9)):
            if field[:1] in _STATE_ORDER:
                self._blob(state[field])

    def _incomplete(self):
        """Read the state again (at most once a second) while it lacks what
        pub/sub may never bring: a status is published only when it changes
        and the market list only when the market starts, so a gateway that
        read the state of a Redis just back empty, before the market wrote
        it again, or missed a restarted market's new list, would wait for
        them forever."""
        return (self._stale or not self._heard_status) and \
            time.monotonic() - self._state_read >= 1.0

    def broadcasts(self):
        backoff = Backoff()
        first = True
        while True:
            if not first:
                self.resubscribes += 1
            first = False
            ps = self.r.pubsub(ignore_subscribe_messages=True)
            try:
                ps.subscribe(self.keys.broadcast)
                # After (re)subscribing: the latest of each, in case we missed it.
                self._heard_status = False
                self._read_state()
                backoff.ok()
                while True:
                    msg = ps.get_message(timeout=BLOCK_MS / 1000)
                    if msg is not None and msg["type"] == "message":
                        self._blob(msg["data"])
                    if self._incomplete():
                        self._read_state()
            except (RedisError, OSError) as exc:
                backoff.fail("broadcast feed", exc)
            except Exception:
                log.exception("bad broadcast")
            finally:
                try:
                    ps.close()
                except Exception:
                    pass

    def settlements(self):
        backoff = Backoff()
        last = None
        keys = self.keys
        while True:
            try:
                if last is None:
                    top = self.r.xrevrange(keys.results, count=1)
                    last = top[0][0] if top else b"0-0"
                got = self.r.xread({keys.results: last}, count=100, block=BLOCK_MS)
                backoff.ok()
                for _, entries in got or ():
                    for eid, fields in entries:
                        last = eid
                        self._results(fields)
            except RedisError as exc:
                backoff.fail("results feed", exc)

    def _results(self, fields):
        sinks = self.remote.sinks
        try:
            rows = loads(fields[b"d"])
        except (KeyError, ValueError):
            return
        remember = self.remote.remember
        on_result = getattr(sinks, "on_market_result", None)
        for row in rows:
            user, bet, col, lo, stake, mult, outcome, payout, balance = row[:9]
            s = Settlement(bet, user, col, lo, stake, mult, outcome, payout)
            self.results += 1
            remember(user, balance)
            if on_result is not None:
                on_result(row[9] if len(row) > 9 else None, user, s, balance)
            elif sinks is not None:
                sinks.on_result(user, s, balance)

    def heartbeat(self):
        """Away once the market's key is gone (``3 * bus_heartbeat_ms``
        after its last beat). Each look also dates that last beat from the
        key's remaining life (``remote.last_beat``, monotonic), which tells
        the gateway whether the market was still beating when a tap went."""
        remote = self.remote
        every = remote.cfg.bus_heartbeat_ms / 4000
        keys = self.keys
        while True:
            try:
                pipe = self.r.pipeline(transaction=False)
                pipe.get(keys.alive)
                pipe.pttl(keys.alive)
                pipe.pexpire(remote.inbox, remote.cfg.bus_inbox_ttl_ms)
                beat, pttl, _ = pipe.execute()
                remote.redis_ok = True
            except RedisError:
                beat, pttl = None, -2
                remote.redis_ok = False
            alive = beat is not None and pttl > 0
            if alive:
                now = time.monotonic()
                remote.seen = now
                try:
                    d = loads(beat)
                    remote.beat_every = d["every"] / 1000
                    remote.last_beat = now - (d["ttl"] - pttl) / 1000
                except (ValueError, KeyError, TypeError):
                    remote.last_beat = now
            remote.set_away(not alive)
            gevent.sleep(every)
