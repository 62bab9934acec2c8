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
import time

import gevent

from ._calls import CallServer
from ._codec import Keys
from ._intake import TapIntake
from ._publish import Publisher
from ._redis import Backoff, RedisError, connect

__all__ = ["MarketBus"]

log = logging.getLogger("tapgrid.bus")


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

    def ensure_group(self, stream):
        """The consumer group on ``stream``, made (with the stream) when missing.
        From 0: a Redis that restarted empty holds only entries newer than us."""
        try:
            self.r.xgroup_create(stream, self.keys.group, id="0", mkstream=True)
        except RedisError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def start(self, handle):
        self.handle = handle
        self.intake = TapIntake(self, handle)
        self.calls = CallServer(self, handle)
        spawn = gevent.spawn
        self._greenlets = [spawn(self.intake.run), spawn(self.intake.flush_loop),
                           spawn(self.calls.run), spawn(self.publisher.run, self, handle)]
        self._heart = spawn(self._heartbeat)
        return self

    def _heartbeat(self):
        keys = self.keys
        beat = json.dumps({"pid": os.getpid(), "since": self.started_ms}).encode()
        every = self.cfg.bus_heartbeat_ms / 1000
        backoff = Backoff()
        while True:
            try:
                self.r.set(keys.alive, beat, px=self.cfg.bus_heartbeat_ms * 3)
                backoff.ok()
            except RedisError as exc:
                backoff.fail("heartbeat", exc)
                continue
            gevent.sleep(every)

    def reply(self, gw, fields):
        """One call's answer to its gateway's inbox (best effort: the caller
        times out into a 503 if it never arrives)."""
        inbox = self.keys.inbox(gw)
        try:
            pipe = self.r.pipeline(transaction=False)
            pipe.xadd(inbox, fields, maxlen=self.cfg.bus_stream_max, approximate=True)
            pipe.pexpire(inbox, self.cfg.bus_inbox_ttl_ms)
            pipe.execute()
        except RedisError as exc:
            log.warning("a call's reply to %s was lost: %r", gw, exc)

    def stats(self):
        return {"intake": dict(self.intake.stats, inflight=self.intake.inflight),
                "calls": {"served": self.calls.served, "skipped": self.calls.skipped},
                "published": self.publisher.published}

    # --- stopping, in order ------------------------------------------------------------

    def stop_reading(self):
        """No new taps or calls; what was read is still answered."""
        for part in (self.intake, self.calls):
            if part is not None:
                part.reading = False
        for g in self._greenlets[:1] + self._greenlets[2:3]:
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
                self.r.delete(self.keys.alive)     # gateways see the market leave at once
            except RedisError:
                pass
        for g in self._greenlets:
            g.kill(block=False)
        self.r.close()
