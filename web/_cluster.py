"""``tapgrid serve --gateways N``: the market and N gateway processes on one
machine, over Redis, supervised by this process.

- Redis: ``--redis URL`` if given, else a private ``redis-server`` this
  process starts and owns (``_privredis.py``); without the binary it exits
  1 saying what to install.
- The market (``tapgrid market``) starts first; the gateways (``tapgrid
  gateway``) once it is ready (each says ``READY=1``, systemd's notify
  protocol). They bind the same port with SO_REUSEPORT, so the kernel
  spreads connections over them and nothing of ours relays bytes.
- A child that dies is restarted with backoff (``engine.Child``); a gateway's
  players reconnect through the others meanwhile.
- SIGTERM or SIGINT stops all in order: the gateways first, each with the
  one-process server's graceful rules (no new connections or taps, queued
  taps answered, sockets closed 1001), then the market (its Writer flushes
  last), then the private Redis.
- The children die with this process however it dies, ``kill -9`` included
  (PR_SET_PDEATHSIG: each then stops gracefully on its own). They run in
  their own process group, so a terminal's Ctrl-C reaches only this process,
  which stops them in order.

Each child gets this command's own flags (so the same TOML, environment and
flags configure every role), with ``--redis`` set to the shared Redis.
"""
import logging
import os
import signal
import sys

import gevent
from gevent.event import Event

from engine import Child, ChildFailed

from ._listen import listen_socket
from ._privredis import PrivateRedis

__all__ = ["serve_cluster", "role_argv"]

log = logging.getLogger("tapgrid.supervisor")

# Flags of ``serve`` the roles must not inherit: (flag, takes a value: True,
# False or "optional").
_OWN_FLAGS = (("--gateways", True), ("--redis", True))
_MARKET_ONLY = (("--backdoor", "optional"),)    # one console socket: the market's


def _strip(argv, flags):
    out, i = [], 0
    while i < len(argv):
        word = argv[i]
        for flag, value in flags:
            if word == flag:
                if value is True or (value == "optional" and i + 1 < len(argv)
                                     and not argv[i + 1].startswith("-")):
                    i += 1
                break
            if word.startswith(flag + "="):
                break
        else:
            out.append(word)
        i += 1
    return out


def role_argv(role, serve_args, redis_url):
    """The command line of one role, from ``serve``'s own flags.

    >>> role_argv("gateway", ["--port", "9000", "--gateways", "2", "--backdoor"], "unix:///r.sock")[3:]
    ['gateway', '--port', '9000', '--redis', 'unix:///r.sock']
    """
    args = _strip(serve_args, _OWN_FLAGS + (() if role == "market" else _MARKET_ONLY))
    return [sys.executable, "-m", "web.cli", role, *args, "--redis", redis_url]


class Cluster:
    def __init__(self, cfg, serve_args):
        self.cfg = cfg
        self.serve_args = list(serve_args)
        self.redis = None
        self.market = None
        self.gateways = []

    def _child(self, name, role, env_extra=None):
        env = dict(os.environ, **(env_extra or {}))
        if self.redis is not None and not self.cfg.session_secret:
            env["TAPGRID_SESSION_SECRET"] = self.redis.session_secret()
        return Child(name, role_argv(role, self.serve_args, self.url), env=env,
                     notify_dir=self.notify_dir, own_group=True,
                     stdout=sys.stderr, stderr=sys.stderr)

    def start(self, ready_timeout=60.0):
        cfg = self.cfg
        # Fail now, with a message, if something that does not share the
        # port holds it (a one-process server, another program): a gateway
        # would otherwise die and be restarted forever.
        try:
            listen_socket(cfg.host, cfg.port, reuse_port=True).close()
        except OSError as exc:
            raise OSError(f"cannot listen on {cfg.host}:{cfg.port} ({exc.strerror}): another "
                          "process holds the port without sharing it") from None
        if cfg.redis:
            self.url = cfg.redis
            self.notify_dir = self._notify_dir()
        else:
            self.redis = PrivateRedis(cfg.db).start()
            self.url = self.redis.url
            self.notify_dir = self.redis.dir
        self.market = self._child("market", "market").start()
        self.market.wait_ready(ready_timeout)
        for i in range(cfg.gateways):
            self.gateways.append(self._child(f"gateway-{i}", "gateway",
                                             {"TAPGRID_REUSE_PORT": "1"}).start())
        for g in self.gateways:
            g.wait_ready(ready_timeout)
        log.info("serving on http://%s:%d: market pid %d, %d gateways (pids %s), redis %s",
                 cfg.host, cfg.port, self.market.pid, len(self.gateways),
                 ",".join(str(g.pid) for g in self.gateways), self.url)
        return self

    def _notify_dir(self):
        import tempfile
        self._tmp = tempfile.mkdtemp(prefix="tapgrid-notify-")   # 0700
        return self._tmp

    def stop(self):
        """Gateways (all at once, each draining), then the market, then Redis."""
        drain = self.cfg.drain_s
        log.info("stopping: %d gateways, then the market", len(self.gateways))
        jobs = [gevent.spawn(g.stop, drain + 5) for g in self.gateways]
        gevent.joinall(jobs)
        codes = {g.name: j.value for g, j in zip(self.gateways, jobs)}
        if self.market is not None:
            codes["market"] = self.market.stop(drain + 5)
        if self.redis is not None:
            codes["redis"] = self.redis.stop()
        elif getattr(self, "_tmp", None):
            import shutil
            shutil.rmtree(self._tmp, ignore_errors=True)
        log.info("stopped: %s", codes)
        return codes


def serve_cluster(cfg, serve_args):
    from ._server import setup_logging
    setup_logging()
    done = Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(sig, done.set)
    cluster = Cluster(cfg, serve_args)

    def start():
        try:
            cluster.start()
        except Exception as exc:        # answered below, in this greenlet
            return exc

    starting = gevent.spawn(start)
    gevent.wait([starting, done], count=1)
    if not starting.ready():            # SIGTERM while starting
        starting.kill()
    elif starting.value is not None:
        cluster.stop()
        if isinstance(starting.value, (ChildFailed, TimeoutError)):
            print(f"tapgrid serve: {starting.value}", file=sys.stderr)
            return 1
        raise starting.value            # RedisMissing, a taken port: tapgrid's message, exit 1
    done.wait()
    codes = cluster.stop()
    return 0 if all(c in (0, -signal.SIGTERM) for c in codes.values()) else 1
