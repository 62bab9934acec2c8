"""What each ``tapgrid`` subcommand does, given the loaded config."""
import os
import sys
import time

__all__ = ["run", "backdoor_path"]


def run(command, cfg, args):
    try:
        return globals()["cmd_" + command](cfg, args) or 0
    except (LookupError, ValueError, OSError) as exc:
        # An operator's mistake (unknown user, bad amount, missing file) is
        # a message, not a traceback.
        print(f"tapgrid {command}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        from actors.store import is_disk_full
        if not is_disk_full(exc):
            raise
        # SQLite's "disk I/O error" is not an OSError. The step that failed
        # was rolled back (an archive run records each step, so the next
        # run finishes the job).
        print(f"tapgrid {command}: the disk is full or failing ({exc}); free some space and"
              f" run it again", file=sys.stderr)
        return 1


def backdoor_path(cfg):
    """Where ``--backdoor`` listens: the given path, or with ``auto`` a
    private ``console`` directory next to the database."""
    if cfg.backdoor in (None, "", "auto"):
        return os.path.join(os.path.dirname(os.path.abspath(cfg.db)), "console", "backdoor.sock")
    return cfg.backdoor


def cmd_attach(cfg, args):
    """Relay this terminal to the server's console (what ``socat -
    UNIX-CONNECT:PATH`` does), until either side closes."""
    import select
    import socket
    path = args.path or backdoor_path(cfg)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    stdin = sys.stdin.buffer.raw if hasattr(sys.stdin.buffer, "raw") else sys.stdin.buffer
    out = sys.stdout.buffer
    watched = [sock, stdin]
    while True:
        ready, _, _ = select.select(watched, [], [])
        if sock in ready:
            data = sock.recv(65536)
            if not data:
                return 0
            out.write(data)
            out.flush()
        if stdin in ready:
            data = os.read(stdin.fileno(), 65536)
            if data:
                sock.sendall(data)
            else:
                sock.shutdown(socket.SHUT_WR)     # EOF: the console says bye and closes
                watched = [sock]


def cmd_shell(cfg, args):
    from engine import ActorSystem, interact
    system = ActorSystem()
    namespace = {"system": system, "cfg": cfg}
    try:
        from actors import shell_namespace
        namespace.update(shell_namespace(system, cfg))
    except ImportError:
        pass
    try:
        interact(namespace)
    finally:
        system.stop()


def cmd_serve(cfg, args):
    if cfg.gateways:
        from ._cluster import serve_cluster
        return serve_cluster(cfg, args.argv[1:])     # the flags after "serve"
    from . import _server
    return _server.serve(cfg)


def cmd_market(cfg, args):
    from . import _split
    return _split.run_market(cfg)


def cmd_gateway(cfg, args):
    from . import _split
    return _split.run_gateway(cfg)


def cmd_audit(cfg, args):
    from actors import audit
    problems = audit(cfg.db)
    if problems:
        print(f"audit FAILED: {problems[0]}", file=sys.stderr)
        for p in problems[1:]:
            print(f"  also: {p}", file=sys.stderr)
        return 1
    print("audit ok")
    return 0


def cmd_credit(cfg, args):
    from actors import credit_offline
    balance = credit_offline(cfg.db, args.user, args.amount)
    print(f"{args.user}: balance {balance}")


def cmd_history(cfg, args):
    from actors import history_offline
    bets = history_offline(cfg.db, args.user, args.limit)
    print(f"{'bet':>8}  {'column (UTC)':19}  {'band $':>19}  {'stake':>8}  {'mult':>6}  "
          f"{'outcome':7}  {'payout':>8}")
    for b in bets:
        col = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(b["col"] / 1000))
        band = f"{b['lo'] / 100:,.2f}+"
        print(f"{b['bet']:>8}  {col:19}  {band:>19}  {b['stake']:>8}  {b['mult'] / 100:>5.2f}x  "
              f"{b['outcome']:7}  {b['payout']:>8}")
    if not bets:
        print("(no bets)")


def cmd_archive(cfg, args):
    from actors import archive_offline
    print(archive_offline(cfg))


# --- operations (issue 13) -------------------------------------------------------------

def cmd_backup(cfg, args):
    # Already at idle CPU priority (web/cli.py, before the imports); the
    # backup itself also puts its disk I/O in the idle class.
    from actors import backup
    r = backup(cfg.db, args.out)
    print(f"backup of {cfg.db} written to {args.out}: {r['bytes']:,} bytes in {r['seconds']} s")


def cmd_restore(cfg, args):
    from actors import restore
    replica = args.replica or cfg.replica
    if not replica:
        raise ValueError("no replica: pass --replica URL or set replica in the config")
    restore(replica, cfg.db, cfg.litestream_bin, args.timestamp)
    print(f"restored {cfg.db} from {replica}; check it with: tapgrid audit --db {cfg.db}")


def cmd_config(cfg, args):
    from .deploy import render
    sys.stdout.write(render(args.kind, cfg, listen=args.listen, server_name=args.server_name,
                            prefix=args.prefix))


def cmd_verify(cfg, args):
    from actors import VerifyError, verify
    from actors.wire import Rejected, b64url_encode, load_session_key, verify_tap
    loaded = {}

    def check(key, payload, sig):
        k = loaded.get(key)
        if k is None:
            try:
                k = loaded[key] = load_session_key(key)
            except Rejected:
                return False
        return verify_tap(k, payload, b64url_encode(sig))

    if not os.path.exists(cfg.db):
        raise FileNotFoundError(f"no database at {cfg.db}")
    try:
        report = verify(cfg.db, cfg, check, args.from_ms, args.to_ms,
                        operator_bets=args.operator_bets)
    except VerifyError as exc:
        print(f"verify FAILED: {exc}", file=sys.stderr)
        return 1
    skipped = report["skipped_files"]
    print(f"verify ok: {report['bets']} settled bets in {report['windows']} windows"
          f" ({report['ticks']} ticks, {report['files']} archive files)"
          + (f"; not on this machine, not checked: {', '.join(skipped)}" if skipped else ""))
    ops = report["operator_bets"]
    if ops:
        shown = ", ".join(map(str, ops[:20])) + (", ..." if len(ops) > 20 else "")
        print(f"of which {len(ops)} placed by the operator from the console, with no player"
              f" signature: bets {shown}")
    return 0
