"""``MarketBus``: everything the market process runs beside ``start_market``
to serve gateways over Redis: the tap intake, the call server, the
publisher (its ``Sinks``) and a heartbeat gateways watch.

    bus = MarketBus(cfg, encoders)                 # encoders: see _publish
    handle = start_market(system, cfg, sinks=bus.publisher)
    bus.start(handle)
    ...
    bus.stop_reading(); bus.drain(5); system.stop(); bus.close()
"""
import json
import logging
import os
import secrets
import socket
import time

import gevent

from ._calls import CallServer
from ._codec import Keys
from ._intake import TapIntake
from ._publish import Publisher
from ._redis import Backoff, RedisError, connect

__all__ = ["MarketBus", "MarketTaken"]

log = logging.getLogger("tapgrid.bus")

# The heartbeat, refreshed only while it is ours: 1 refreshed (or set again
# after Redis came back empty), 0 held by another market.
_REFRESH = """
local v = redis.call('get', KEYS[1])
if v == ARGV[1] or not v then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class MarketTaken(RuntimeError):
    """Another market already serves this Redis."""


class MarketBus:
    def __init__(self, cfg, encoders, client=None, keys=None):
        self.cfg = cfg
        self.keys = keys or Keys()
        self.r = client or connect(cfg.redis)
        self.publisher = Publisher(cfg, encoders)
        self.intake = None
        self.calls = None
        self.handle = None
        self._greenlets = []
        self._heart = None
        self.started_ms = int(time.time() * 1000)
        self._beat = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": self.started_ms, "every": cfg.bus_heartbeat_ms,
                                 "ttl": cfg.bus_heartbeat_ms * 3,
                                 "token": secrets.token_hex(8)}).encode()

    def ensure_group(self, stream):
        """The consumer group on ``stream``, made (with the stream) when missing.
        From 0: a Redis that restarted empty holds only entries newer than us."""
        try:
            self.r.xgroup_create(stream, self.keys.group, id="0", mkstream=True)
        except RedisError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def start(self, handle, on_lost=None):
        """Claim the market's place (one market per Redis), then serve.
        ``on_lost`` is called if another market takes the place over (this
        one stalled longer than its heartbeat lives): it must stop."""
        self.handle = handle
        self.on_lost = on_lost
        self._claim()
        self.intake = TapIntake(self, handle)
        self.calls = CallServer(self, handle)
        spawn = gevent.spawn
        self._greenlets = [spawn(self.intake.run), spawn(self.calls.run),
                           spawn(self.publisher.run, self, handle), spawn(self.calls.flush_loop)]
        self._heart = spawn(self._heartbeat)
        return self

    def _claim(self):
        """SET NX the heartbeat key. Two markets on one Redis would share the
        tap stream's consumer group, each judging taps against its own
        ledger; so a second one waits for the first one's key to expire (a
        killed market's does within ``3 * bus_heartbeat_ms``) and otherwise
        refuses, naming the holder."""
        ttl = self.cfg.bus_heartbeat_ms * 3
        backoff = Backoff()
        give_up = None
        while True:
            try:
                if self.r.set(self.keys.alive, self._beat, px=ttl, nx=True):
                    return
                holder = self.r.get(self.keys.alive)
                backoff.ok()
            except RedisError as exc:
                backoff.fail("market claim", exc)
                continue
            now = time.monotonic()
            if give_up is None:
                give_up = now + ttl / 1000 + 1.0
                log.info("another market's heartbeat is in Redis (%s): waiting for it to expire",
                         holder)
            if now > give_up:
                raise MarketTaken(f"another market serves this Redis: {holder!r}")
            gevent.sleep(0.1)

    def _heartbeat(self):
        keys = self.keys
        every = self.cfg.bus_heartbeat_ms / 1000
        ttl = self.cfg.bus_heartbeat_ms * 3
        backoff = Backoff()
        while True:
            try:
                held = self.r.eval(_REFRESH, 1, keys.alive, self._beat, ttl)
                backoff.ok()
            except RedisError as exc:
                backoff.fail("heartbeat", exc)
                continue
            if held == 0:
                log.error("another market took over this Redis: stopping")
                if self.on_lost is not None:
                    self.on_lost()
                return
            gevent.sleep(every)

    def stats(self):
        return {"intake": dict(self.intake.stats, inflight=self.intake.inflight),
                "calls": {"served": self.calls.served, "skipped": self.calls.skipped},
                "published": self.publisher.published}

    # --- stopping, in order ------------------------------------------------------------

    def stop_reading(self):
        """No new taps or calls; what was read is still answered (the
        intake's loop goes on flushing acks, reading no more)."""
        for part in (self.intake, self.calls):
            if part is not None:
                part.reading = False
        if self.intake is not None:
            self.intake.wake.set()
        for g in self._greenlets[1:2]:
            g.kill(block=False)

    def drain(self, timeout):
        """Wait until every tap read has been answered and flushed."""
        with gevent.Timeout(timeout, False):
            while self.intake is not None and not self.intake.idle():
                gevent.sleep(0.01)

    def close(self):
        if self._heart is not None:
            self._heart.kill(block=False)
            try:
                # Gateways see the market leave at once (only if it is still ours).
                self.r.eval(_RELEASE, 1, self.keys.alive, self._beat)
            except RedisError:
                pass
        for g in self._greenlets:
            g.kill(block=False)
        if self.intake is not None:
            self.intake.link.close()
        if self.calls is not None:
            self.calls.close()
        if self.publisher.link is not None:
            self.publisher.link.close()
        self.r.close()
