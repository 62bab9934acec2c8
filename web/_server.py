"""``tapgrid serve``: the market, the web app and the WebSocket gateway in one
gevent process, with a graceful shutdown on SIGTERM/SIGINT:

1. stop accepting connections and taps;
2. wait for the acks of taps already queued;
3. stop the actors (the Writer last, so every accepted bet is written);
4. close every socket with 1001 (going away).
"""
import json
import logging
import resource
import signal
import sys
import time

import gevent
from gevent.event import Event
from gevent.pool import Pool
from gevent.pywsgi import WSGIServer

from actors import Replicator, start_market
from engine import ActorSystem, GcPacer, GcWatch, notify_ready, settle_gc, start_backdoor, stop_backdoor

from .auth import (ChallengeStore, MemoryNonceStore, RedisChallengeStore, RedisNonceStore,
                   make_session_store, make_tickets)
from .gateway import FastHandler, Fanout, Gateway, PlayerFeed, RelayFanout
from .http import HEADERS, build_app, guard
from ._listen import listen_socket
from ._metrics import Metrics

__all__ = ["serve", "Server", "setup_logging", "handler_pool_size"]

log = logging.getLogger("tapgrid")


class JsonFormatter(logging.Formatter):
    def format(self, record):
        out = {"ts": int(record.created * 1000), "level": record.levelname.lower(),
               "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(level=logging.INFO):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def handler_pool_size(cfg):
    """How many connections are handled at once. A full pool stops the
    accept loop (new ones wait in the backlog) instead of running out of
    descriptors: ``fd_reserve`` stay free for the database, the archiver's
    files, logs and the health check's own connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:    # use what we are allowed to
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    wanted = cfg.max_handlers or cfg.max_connections + 1024
    return max(8, min(wanted, soft - cfg.fd_reserve))


def _redacted(url):
    """A Redis URL without its password, for logs."""
    head, at, tail = url.rpartition("@")
    return (head.split("//")[0] + "//***@" + tail) if at else url


class Server:
    """Everything ``tapgrid serve`` runs; tests and benchmarks can use it too."""

    def __init__(self, cfg, remote=False):
        """``remote``: a gateway process (``tapgrid gateway``): the market is
        another process, reached over Redis (``actors.bus.RemoteMarket``)."""
        self.cfg = cfg
        self.remote = remote
        self.system = ActorSystem()
        self.metrics = Metrics()
        if remote:
            from actors.bus import RemoteMarket
            self.hub = RelayFanout(cfg, self.metrics)
            self.market = RemoteMarket(cfg)
            self.market.sinks = self.hub
            # The board is the market's (actors.Board), relayed like the grid.
            self.hub.feed = PlayerFeed(cfg, self.hub)
            self.hub.start(self.market)
            self.market.start()
        else:
            self.hub = Fanout(cfg, self.metrics)
            self.hub.feed = PlayerFeed(cfg, self.hub)
            self.market = start_market(self.system, cfg, sinks=self.hub)
            self.hub.start(self.market)
        self.hub.feed.start()
        self.sessions = make_session_store(cfg, self.market)
        now = int(time.time() * 1000)
        self.nonces = (RedisNonceStore(cfg.redis, started_ms=now) if cfg.redis
                       else MemoryNonceStore(started_ms=now))
        self.challenges = RedisChallengeStore(cfg.redis) if cfg.redis else ChallengeStore()
        self.gateway = Gateway(cfg, self.market, self.hub, self.sessions, self.nonces, self.metrics)
        self.gateway.tickets = make_tickets(cfg)
        self.hub.gateway = self.gateway
        self.app = build_app(cfg, self.market, self.hub, self.gateway, self.sessions,
                             self.challenges, self.metrics)
        self.metrics.attach(self.system, self.market, self.hub, cfg.db, cfg.min_free_disk)
        self.http = WSGIServer(listen_socket(cfg.host, cfg.port, cfg.reuse_port),
                               guard(self.app, cfg), handler_class=FastHandler,
                               log=None, error_log=logging.getLogger("tapgrid.http"),
                               spawn=Pool(handler_pool_size(cfg)))
        self.http.header_timeout = cfg.header_timeout_s
        # Each accepted connection's request head is read and parsed before
        # admission (and the HandshakeGate): a loop turn takes in at most
        # this many, so a storm's accepts queue in the listen backlog instead
        # of making one turn of thousands ahead of players' taps.
        self.http.max_accept = max(1, cfg.accept_batch)
        self.http.admit = self.gateway.admit
        self.http.upgrade_done = self.gateway.upgrade_done
        self.http.release = self.gateway.release
        self.http.refusal_headers = HEADERS
        self.http.frame_limit = cfg.frame_limit
        self.backdoor = None
        self.gcwatch = None
        self.replica = None
        self._summary = None

    def start(self):
        # Everything built so far lives as long as the process: keep it out
        # of the collector's way, and collect less eagerly (a full pass over
        # a large heap is a latency spike).
        settle_gc(tuple(int(x) for x in self.cfg.gc_thresholds.split(",")))
        self.gcwatch = self.metrics.gc = GcWatch().start()
        self.gcpacer = GcPacer(self.cfg.gc_pace_ms / 1000).start()
        self.http.start()
        if self.cfg.replica and not self.remote:
            # after the Store opened the file (WAL on, writer lock held)
            self.replica = self.metrics.replica = Replicator(self.cfg).start()
        if self.cfg.backdoor:
            from ._commands import backdoor_path
            self.backdoor = start_backdoor(backdoor_path(self.cfg), {
                "system": self.system, "market": self.market, "server": self, "cfg": self.cfg})
        self._summary = gevent.spawn(self._summarise)
        self._lag = self.gateway.watch_lag()
        self._loops = [gevent.spawn(self.gateway.expiry_loop), gevent.spawn(self._purge_sessions),
                       gevent.spawn(self.sessions.watch_revocations, self.gateway.end_session)]
        if self.cfg.redis and not self.cfg.session_secret:
            log.warning("session records in Redis are unsigned: set session_secret "
                        "(TAPGRID_SESSION_SECRET) so that a write to Redis cannot mint a session")
        if self.remote:
            log.info("gateway %s serving on http://%s:%d (market over %s, demo=%s)",
                     self.market.gateway_id, self.cfg.host, self.http.server_port,
                     _redacted(self.cfg.redis), self.cfg.demo)
            return
        log.info("serving on http://%s:%d (db=%s, feed=%s, demo=%s, nonces=%s)",
                 self.cfg.host, self.http.server_port, self.cfg.db,
                 ",".join(self.cfg.sources) + f" (quorum {self.cfg.quorum})" if self.cfg.sources
                 else self.cfg.feed, self.cfg.demo,
                 "redis" if self.cfg.redis else "memory")

    @property
    def port(self):
        return self.http.server_port

    def _summarise(self, every=10.0):
        last = {}
        while True:
            gevent.sleep(every)
            now = dict(self.market.counters)
            delta = {k: v - last.get(k, 0) for k, v in now.items() if v != last.get(k, 0)}
            if delta:
                log.info("rejects in the last %ds: %s", int(every), json.dumps(delta, sort_keys=True))
            last = now

    def _purge_sessions(self):
        every = self.cfg.session_purge_s
        if every <= 0:
            return
        while True:
            gevent.sleep(every)
            now = int(time.time() * 1000)
            try:
                self.sessions.purge(now)                # a DELETE in the Writer's thread
                if self.cfg.demo:
                    # Past the session lifetime too: no live session points at them.
                    cutoff = now - max(self.cfg.guest_idle_ms, self.cfg.session_ttl_ms)
                    gone = self.market.purge_guests(cutoff)
                    if gone:
                        log.info("purged %d idle guests that never bet", len(gone))
            except Exception as exc:
                log.warning("session/guest purge failed: %r", exc)

    def stop(self, timeout=10.0):
        log.info("shutting down: no new connections or taps")
        self.http.close()
        self.gateway.drain(timeout / 2)
        self.hub.stop()
        self.hub.feed.stop()
        if self._summary is not None:
            self._summary.kill(block=False)
            self._lag.stop()
            for g in self._loops:
                g.kill(block=False)
        self.system.stop(timeout=timeout / 2)
        if self.remote:
            self.market.close()
        self.gateway.close_all(1001)
        if self.replica is not None:
            self.replica.stop()     # after the Writer's last commit: Litestream ships it
        if self.backdoor is not None:
            stop_backdoor(self.backdoor)
        if self.gcwatch is not None:
            self.gcwatch.stop()
            self.gcpacer.stop()
        try:
            self.http.stop(timeout=1)
        except Exception:
            pass
        log.info("stopped")


def serve(cfg, remote=False):
    setup_logging()
    server = Server(cfg, remote=remote)
    server.start()
    notify_ready()      # systemd Type=notify, and serve --gateways' supervisor
    done = Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(sig, done.set)
    done.wait()
    server.stop(cfg.drain_s)
    return 0
