"""``/metrics``: Prometheus text through prometheus-client.

Counters and the latency histogram are updated as taps flow; everything
else (mailbox depths, connections, price age, disk free, writer batches)
is read from the statistics objects at scrape time, so the hot path pays
nothing for it.

    m = Metrics(); m.tap("ok", 0.004)
    body, content_type = m.render()
"""
import os
import shutil
import time

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from actors import LOST, MULT_BUCKETS, WON, mult_bucket
from gevent import get_hub

from engine import GC_PAUSE_BUCKETS, urgent_lane

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
# How late a 10 ms timer fires, in seconds: fine steps where the targets are.
_LAG_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05,
                0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)
_COMMIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        # Taps are counted in plain ints and exported at scrape time: a
        # prometheus-client Counter/Histogram costs a lock and several µs a
        # call, on the hottest path of the server.
        self.tap_counts = {}
        self._lat_counts = [0] * (len(_LATENCY_BUCKETS) + 1)
        self._lat_sum = 0.0
        self.results = Counter("tapgrid_results", "Settled bets by outcome", ["outcome"],
                               registry=self.registry)
        # Frames too: a plain int (a prometheus-client Counter took 8 % of
        # the event loop's tap time in a py-spy profile at 3,000 taps/s).
        self.frames_in = 0
        self.started = time.time()     # the frames counter's _created (Grafana's uptime)
        self._result_children = {}
        # Stakes and payouts of won and lost bets per multiplier bucket:
        # payout / stake per bucket is the realised return to player, the
        # live view of the edge (void bets are refunds and stay out).
        self.settled = {name: [0, 0, 0] for name, _, _ in MULT_BUCKETS}   # bets, stake, payout
        self._sources = None
        self.replica = None       # the Litestream supervisor, when a replica is on
        self.gc = None            # an engine.GcWatch, when the process times its collections
        self._batches = [0] * (len(_BATCH_BUCKETS) + 1)
        self._batch_sum = 0
        self._commits = [0] * (len(_COMMIT_BUCKETS) + 1)
        self._commit_sum = 0.0
        self._lag = [0] * (len(_LAG_BUCKETS) + 1)
        self._lag_sum = 0.0
        self._lag_max = 0.0

    def loop_lag(self, ms):
        """One sample of the event loop's lateness (the gateway's 10 ms timer)."""
        s = max(0.0, ms / 1000)
        self._lag[_bucket(_LAG_BUCKETS, s)] += 1
        self._lag_sum += s
        if s > self._lag_max:
            self._lag_max = s

    def tap(self, outcome, seconds=None):
        counts = self.tap_counts
        counts[outcome] = counts.get(outcome, 0) + 1
        if seconds is not None:
            self._lat_sum += seconds
            self._lat_counts[_bucket(_LATENCY_BUCKETS, seconds)] += 1

    def result(self, outcome, settlement=None):
        child = self._result_children.get(outcome)
        if child is None:
            child = self._result_children[outcome] = self.results.labels(outcome)
        child.inc()
        if settlement is not None and settlement.outcome in (WON, LOST):
            row = self.settled[mult_bucket(settlement.mult)]
            row[0] += 1
            row[1] += settlement.stake
            row[2] += settlement.payout

    def attach(self, system, market, hub, db_path, min_free):
        """Read these at scrape time."""
        self._sources = (system, market, hub, db_path, min_free)
        self.registry.register(_ScrapeCollector(self))

    def render(self):
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def drain_writer(self, stats):
        sizes, times = stats.batch_sizes, stats.commit_times
        stats.batch_sizes, stats.commit_times = [], []
        for n in sizes:
            self._batches[_bucket(_BATCH_BUCKETS, n)] += 1
            self._batch_sum += n
        for t in times:
            self._commits[_bucket(_COMMIT_BUCKETS, t)] += 1
            self._commit_sum += t


def _bucket(bounds, value):
    for i, b in enumerate(bounds):
        if value <= b:
            return i
    return len(bounds)


def _histogram(name, doc, bounds, counts, total):
    buckets, acc = [], 0
    for b, c in zip(list(bounds) + [float("inf")], counts):
        acc += c
        buckets.append(("+Inf" if b == float("inf") else str(b), acc))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=total)


def _source_metrics(boards, now_ms):
    """Each price source's age and deviation from the median, and the quorum."""
    labels = ["asset", "source"]
    age = GaugeMetricFamily("tapgrid_price_source_age_seconds",
                            "Since the source's last tick arrived (-1: none yet)", labels=labels)
    dev = GaugeMetricFamily("tapgrid_price_source_deviation_bp",
                            "The source's last price minus the median, in basis points",
                            labels=labels)
    fresh = GaugeMetricFamily("tapgrid_price_source_fresh",
                              "1 while the source ticked within 2x its interval", labels=labels)
    n_fresh = GaugeMetricFamily("tapgrid_price_sources_fresh", "Fresh sources", labels=["asset"])
    quorum = GaugeMetricFamily("tapgrid_price_quorum", "Fresh sources needed", labels=["asset"])
    state = GaugeMetricFamily("tapgrid_price_state", "1 for the price's state: ok, quorum"
                              " (too few fresh sources) or divergence", labels=["asset", "state"])
    for asset, board in sorted(boards.items()):
        snap = board.snapshot(now_ms)
        for s in snap["sources"]:
            key = [asset, s["name"]]
            age.add_metric(key, -1 if s["age_ms"] is None else s["age_ms"] / 1000)
            if s["deviation_bp"] is not None:
                dev.add_metric(key, s["deviation_bp"])
            fresh.add_metric(key, 1 if s["fresh"] else 0)
        n_fresh.add_metric([asset], snap["fresh"])
        quorum.add_metric([asset], snap["quorum"])
        for name in ("ok", "quorum", "divergence"):
            state.add_metric([asset, name], 1 if snap["state"] == name else 0)
    yield from (age, dev, fresh, n_fresh, quorum, state)


def _market_metrics(market):
    """Per market (v1.1) its state and grid age; the age of the price
    behind the accepted multipliers (SPEC 7: at most 250 ms)."""
    units = getattr(market, "units", None) or []
    state = GaugeMetricFamily("tapgrid_market_state_open", "1 when the market takes taps",
                              labels=["market_id"])
    grid_age = GaugeMetricFamily("tapgrid_market_grid_age_seconds",
                                 "Age of the price the market's grid was priced from",
                                 labels=["market_id"])
    now = time.time() * 1000
    for u in units:
        state.add_metric([u.market_id], 1 if u.ctx.status.is_open else 0)
        ts = u.ctx.grid.price_ts
        grid_age.add_metric([u.market_id], (now - ts) / 1000 if ts else -1)
    yield state
    yield grid_age
    ages = getattr(getattr(market, "ctx", None), "price_ages", None)   # none in a gateway
    if ages is not None:
        q = GaugeMetricFamily("tapgrid_tap_price_age_seconds",
                              "Age of the price behind accepted multipliers (recent taps)",
                              labels=["quantile"])
        for label, p in (("0.5", 0.5), ("0.99", 0.99)):
            v = ages.quantile(p)
            q.add_metric([label], -1 if v is None else v / 1000)
        yield q
        yield CounterMetricFamily("tapgrid_tap_price_aged", "Accepted taps whose price age"
                                  " was measured", value=ages.n)
        yield CounterMetricFamily("tapgrid_taps_repriced", "Column prices from a tick newer than"
                                  " the grid", value=ages.repriced)
        yield CounterMetricFamily("tapgrid_taps_price_too_old", "Taps refused: the newest price"
                                  " was older than max_price_age_ms", value=ages.too_old)
        rep = market.ctx.repricing.statistics()
        yield CounterMetricFamily("tapgrid_columns_priced", "Columns priced (once per tick each,"
                                  " by a Column or the MarketMaker)", value=rep.columns_priced)
        yield CounterMetricFamily("tapgrid_column_price_hits", "Column prices read from the"
                                  " tick's pricing instead of priced again", value=rep.hits)


def _bus_metrics(market):
    """A gateway's side of the bus (actors.bus.RemoteMarket)."""
    st = market.stats()
    yield GaugeMetricFamily("tapgrid_bus_pending_taps", "Taps sent to the market, not yet"
                            " answered", value=st["pending"])
    for key, doc in (("sent", "Taps sent to the market"),
                     ("acked", "Answers from the market to this gateway's taps"),
                     ("gave_up", "Taps answered overloaded: no answer from the market in time"),
                     ("late_acks", "Ok acks that came after their tap was answered overloaded"),
                     ("relayed", "Broadcasts (ticks, grids, status) relayed from the market"),
                     ("resubscribes", "Times the broadcast feed was cut off and resubscribed")):
        yield CounterMetricFamily("tapgrid_bus_" + key, doc, value=st[key])
    yield GaugeMetricFamily("tapgrid_bus_market_away", "1 while the market's heartbeat is missing",
                            value=1 if market.status.away else 0)


def _gc_metrics(watch):
    """The collector's pauses per generation (engine.GcWatch): each one
    stops the event loop for its whole length."""
    pauses = HistogramMetricFamily("tapgrid_gc_pause_seconds", "Garbage-collector pauses "
                                   "(the event loop stopped), by generation", labels=["generation"])
    worst = GaugeMetricFamily("tapgrid_gc_pause_worst_seconds", "The longest collector pause "
                              "since start, by generation", labels=["generation"])
    for st in watch.stats:
        acc, buckets = 0, []
        for b, c in zip(list(GC_PAUSE_BUCKETS) + [float("inf")], st.buckets):
            acc += c
            buckets.append(("+Inf" if b == float("inf") else str(b), acc))
        pauses.add_metric([str(st.generation)], buckets, st.seconds)
        worst.add_metric([str(st.generation)], st.worst)
    yield pauses
    yield worst


def _settled_families(settled):
    fams = (CounterMetricFamily("tapgrid_settled_bets", "Won and lost bets by multiplier bucket",
                                labels=["bucket"]),
            CounterMetricFamily("tapgrid_settled_stake", "Stakes of won and lost bets (minor units) "
                                "by multiplier bucket", labels=["bucket"]),
            CounterMetricFamily("tapgrid_settled_payout", "Payouts of won and lost bets (minor units) "
                                "by multiplier bucket; payout / stake is the RTP", labels=["bucket"]))
    for name, row in settled.items():
        for fam, v in zip(fams, row):
            fam.add_metric([name], v)
    return fams


def disk_free(path):
    d = os.path.dirname(os.path.abspath(path)) or "."
    return shutil.disk_usage(d).free


class _ScrapeCollector:
    def __init__(self, metrics):
        self.m = metrics

    def describe(self):
        return []

    def collect(self):
        m = self.m
        system, market, hub, db_path, _ = m._sources
        ctx = getattr(market, "ctx", None)     # None in a gateway: the market is elsewhere
        if ctx is not None:
            m.drain_writer(ctx.writer_stats)
        taps = CounterMetricFamily("tapgrid_taps", "Taps by outcome (ok or reject reason)",
                                   labels=["outcome"])
        for outcome, n in sorted(m.tap_counts.items()):
            taps.add_metric([outcome], n)
        yield taps
        yield CounterMetricFamily("tapgrid_ws_frames_received", "WebSocket frames received",
                                  value=m.frames_in, created=m.started)
        yield from _settled_families(m.settled)
        yield _histogram("tapgrid_tap_latency_seconds", "Tap receipt to ack sent (durable for ok)",
                         _LATENCY_BUCKETS, m._lat_counts, m._lat_sum)
        yield _histogram("tapgrid_writer_batch_size", "Bets per group commit",
                         _BATCH_BUCKETS, m._batches, m._batch_sum)
        yield _histogram("tapgrid_writer_commit_seconds", "Group commit time (write + fsync)",
                         _COMMIT_BUCKETS, m._commits, m._commit_sum)
        depth = GaugeMetricFamily("tapgrid_mailbox_depth", "Messages queued per actor", labels=["actor"])
        peak = GaugeMetricFamily("tapgrid_mailbox_peak", "Peak mailbox depth per actor", labels=["actor"])
        processed = GaugeMetricFamily("tapgrid_actor_processed", "Messages processed per actor",
                                      labels=["actor"])
        restarts = GaugeMetricFamily("tapgrid_actor_restarts", "Restarts per actor", labels=["actor"])
        for s in system.actors():
            name = "column" if s.name.startswith("column-") else s.name
            if name == "column":
                continue
            depth.add_metric([name], s.depth)
            peak.add_metric([name], s.peak)
            processed.add_metric([name], s.processed)
            restarts.add_metric([name], s.restarts)
        yield depth
        yield peak
        yield processed
        yield restarts
        yield GaugeMetricFamily("tapgrid_dead_letters", "Undeliverable messages",
                                value=system.dead_letters.count)
        yield GaugeMetricFamily("tapgrid_connections", "Open WebSocket connections",
                                value=len(getattr(hub, "conns", ())))
        if hasattr(hub, "skipped"):
            yield CounterMetricFamily("tapgrid_fanout_broadcasts", "Tick/grid broadcasts sent",
                                      value=hub.broadcasts)
            yield CounterMetricFamily(
                "tapgrid_fanout_skipped", "Broadcasts (ticks, grids) a connection skipped because "
                "its send buffer was full; acks and results are never skipped", value=hub.skipped)
        gateway = getattr(hub, "gateway", None)
        if gateway is not None:
            yield GaugeMetricFamily("tapgrid_loop_lag_seconds", "How late the event loop runs",
                                    value=gateway.loop_lag_ms / 1000)
            yield _histogram("tapgrid_loop_lag_sample_seconds",
                             "How late a 10 ms timer fires, every sample", _LAG_BUCKETS, m._lag,
                             m._lag_sum)
            # The worst since the previous scrape (then reset): a benchmark
            # step, or a Prometheus interval, gets its own maximum.
            lag_max, m._lag_max = m._lag_max, 0.0
            yield GaugeMetricFamily("tapgrid_loop_lag_max_seconds",
                                    "Worst event-loop lag since the previous scrape", value=lag_max)
            pipe = getattr(gateway, "pipeline", None)
            if pipe is not None:
                yield CounterMetricFamily("tapgrid_verify_batches",
                                          "Signature batches handed to the verify threads",
                                          value=pipe.batches)
                yield CounterMetricFamily("tapgrid_verify_held_back",
                                          "Taps verified before an earlier tap of their "
                                          "connection, held back to keep its order",
                                          value=pipe.held_back)
            yield GaugeMetricFamily("tapgrid_handshakes_shed", "Upgrades refused with 503",
                                    value=gateway.shed)
            bulk = getattr(gateway, "bulk", None)
            if bulk is not None:
                yield CounterMetricFamily("tapgrid_teardowns_parked", "Connection teardowns that "
                                          "waited for a short loop queue (engine.BulkGate)",
                                          value=bulk.parked)
                yield GaugeMetricFamily("tapgrid_teardowns_waiting", "Teardowns waiting now",
                                        value=bulk.waiting)
            yield CounterMetricFamily("tapgrid_urgent_wakes", "Wake-ups (actors, taps) run ahead "
                                      "of a long loop callback queue (engine.wake_soon)",
                                      value=urgent_lane(get_hub().loop).ran)
            gate = getattr(gateway, "gate", None)
            if gate is not None:
                yield GaugeMetricFamily("tapgrid_handshakes_in_progress",
                                        "Upgrades being worked on (at most handshake_concurrency)",
                                        value=gate.busy)
                yield GaugeMetricFamily("tapgrid_handshakes_waiting",
                                        "Upgrades queued at the HandshakeGate for a slot",
                                        value=len(gate.waiting))
                yield CounterMetricFamily("tapgrid_handshakes_queued",
                                          "Upgrades that waited at the HandshakeGate", value=gate.queued)
                yield CounterMetricFamily("tapgrid_handshakes_gate_refused",
                                          "Upgrades refused (503) by the HandshakeGate: its queue "
                                          "full, or no slot within handshake_wait_s", value=gate.refused)
            refused = CounterMetricFamily(
                "tapgrid_connections_limited", "Upgrades refused (per_user, per_address, "
                "address_rate) and sockets closed (strikes, slow_reader) by a per-client limit",
                labels=["reason"])
            for reason in ("per_user", "per_address", "address_rate", "strikes", "slow_reader"):
                refused.add_metric([reason], gateway.refused.get(reason, 0))
            yield refused
            limits = GaugeMetricFamily("tapgrid_limit", "Configured per-client limits", labels=["name"])
            cfg = gateway.cfg
            for name in ("max_conns_per_user", "max_conns_per_address", "handshake_rate_per_address",
                         "handshake_rate", "handshake_concurrency", "handshake_queue", "tap_rate", "tap_burst", "max_strikes", "max_send_buffer",
                         "max_connections", "max_body"):
                limits.add_metric([name], float(getattr(cfg, name)))
            yield limits
        if ctx is not None:
            yield GaugeMetricFamily("tapgrid_writer_pending_taps", "Taps accepted, not yet durable",
                                    value=ctx.writer_stats.pending_taps)
        else:
            yield from _bus_metrics(market)
        grid = market.grid
        age = (time.time() * 1000 - grid.price_ts) / 1000 if grid.price_ts else -1
        yield GaugeMetricFamily("tapgrid_price_age_seconds", "Age of the last priced tick", value=age)
        yield GaugeMetricFamily("tapgrid_market_open", "1 when betting is open",
                                value=1 if market.status.is_open else 0)
        yield from _market_metrics(market)
        if ctx is not None:
            yield from _source_metrics(ctx.price_boards, time.monotonic() * 1000)
        try:
            free = disk_free(db_path)
        except OSError:
            free = -1
        if m.replica is not None:
            yield GaugeMetricFamily("tapgrid_replica_up", "1 while Litestream runs",
                                    value=1 if m.replica.alive else 0)
            yield GaugeMetricFamily("tapgrid_replica_restarts", "Litestream restarts",
                                    value=m.replica.restarts)
        if m.gc is not None:
            yield from _gc_metrics(m.gc)
        yield GaugeMetricFamily("tapgrid_disk_free_bytes", "Free bytes on the database's filesystem",
                                value=free)
