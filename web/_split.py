"""``tapgrid market`` and ``tapgrid gateway``: the two roles of the split
(SPEC section 1), talking over Redis (``actors.bus``).

- the market runs what ``start_market`` runs (Columns, ledger, Writer,
  Resolver, Watchdog, Archiver, DiskGuard) plus the bus service: it is the
  only process that writes the database;
- a gateway is ``Server`` on a ``RemoteMarket``: HTTP, WebSocket, sessions,
  SIWE and nonces in Redis, signatures, rate limits, the fan-out. It holds
  no money and opens no database.

SIGTERM stops the market in order: no new taps, the taps read answered,
the actors stopped (the Writer last), the last acks flushed, then Redis.
"""
import logging
import signal
import sys
import time

import gevent
from gevent.event import Event

__all__ = ["run_market", "run_gateway"]

log = logging.getLogger("tapgrid")


def _need_redis(cfg, role):
    if not cfg.redis:
        print(f"tapgrid {role}: --redis URL is required (e.g. redis://127.0.0.1:6379/0)",
              file=sys.stderr)
        return False
    return True


def _wait_for_signal(done=None):
    done = done or Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(sig, done.set)
    done.wait()


def run_market(cfg):
    from actors import Replicator, start_market
    from actors.bus import MarketBus, MarketTaken
    from engine import ActorSystem, GcPacer, GcWatch, notify_ready, settle_gc

    from ._server import _redacted, setup_logging
    from .gateway import Encoders
    if not _need_redis(cfg, "market"):
        return 2
    setup_logging()
    system = ActorSystem()
    bus = MarketBus(cfg, Encoders(cfg))
    handle = start_market(system, cfg, sinks=bus.publisher)
    done = Event()
    try:
        bus.start(handle, on_lost=done.set)
    except MarketTaken as exc:
        print(f"tapgrid market: {exc}", file=sys.stderr)
        system.stop(timeout=cfg.drain_s)
        return 1
    replica = Replicator(cfg).start() if cfg.replica else None
    # As in serve: the long-lived state frozen out of the collector's scans,
    # the young generations collected on a clock, every pause timed.
    settle_gc(tuple(int(x) for x in cfg.gc_thresholds.split(",")))
    gcwatch = GcWatch().start()
    pacer = GcPacer(cfg.gc_pace_ms / 1000).start()
    ops = _ops_server(cfg, system, handle, bus, gcwatch) if cfg.market_port is not None else None
    purger = gevent.spawn(_purge_guests, cfg, handle)
    log.info("market on %s (db=%s, feed=%s, pid in %s)", _redacted(cfg.redis), cfg.db,
             ",".join(cfg.sources) or cfg.feed, bus.keys.alive)
    notify_ready()          # serve --gateways starts the gateways now (systemd: Type=notify)
    _wait_for_signal(done)
    log.info("market stopping: no new taps")
    pacer.stop()
    gcwatch.stop()
    purger.kill(block=False)
    if ops is not None:
        ops.close()
    bus.stop_reading()
    bus.drain(cfg.drain_s / 2)
    system.stop(timeout=cfg.drain_s / 2)
    bus.drain(2.0)          # the acks of the Writer's last commit
    if replica is not None:
        replica.stop()
    bus.close()
    log.info("market stopped")
    return 0


def _ops_server(cfg, system, handle, bus, gcwatch=None):
    """The market's own ``/healthz`` and ``/metrics`` (``--market-port``):
    writer batches and commits, actors, price sources, settled bets by
    multiplier bucket, disk. Gateways have theirs; this one has no players."""
    import bottle
    from gevent.pywsgi import WSGIServer

    from ._metrics import Metrics
    from .http import add_ops_routes, guard
    metrics = Metrics()
    metrics.gc = gcwatch
    bus.publisher.metrics = metrics
    metrics.attach(system, handle, bus.publisher, cfg.db, cfg.min_free_disk)
    app = bottle.Bottle()
    add_ops_routes(app, cfg, handle, metrics)
    server = WSGIServer((cfg.host, cfg.market_port), guard(app, cfg), log=None,
                        error_log=logging.getLogger("tapgrid.http"))
    server.start()
    log.info("market /healthz and /metrics on http://%s:%d", cfg.host, server.server_port)
    return server


def _purge_guests(cfg, handle):
    """Idle guests that never bet, as ``tapgrid serve`` does (the market owns them)."""
    every = cfg.session_purge_s
    if every <= 0 or not cfg.demo:
        return
    while True:
        gevent.sleep(every)
        cutoff = int(time.time() * 1000) - max(cfg.guest_idle_ms, cfg.session_ttl_ms)
        try:
            gone = handle.purge_guests(cutoff)
            if gone:
                log.info("purged %d idle guests that never bet", len(gone))
        except Exception as exc:
            log.warning("guest purge failed: %r", exc)


def run_gateway(cfg):
    from . import _server
    if not _need_redis(cfg, "gateway"):
        return 2
    return _server.serve(cfg, remote=True)

