"""``tapgrid serve --gateways N`` with real processes: the supervisor, its
market, its gateways on one SO_REUSEPORT port and its private redis-server
on a Unix socket.

- a player signs in, taps and is acked through the shared port;
- a gateway killed with -9 is restarted and its players reconnect;
- SIGTERM stops the gateways, then the market, then Redis, with every
  acked bet in the database and the audit clean;
- the supervisor killed with -9 takes every child with it, and the next
  start on the same database works;
- without redis-server on PATH it exits 1 saying what to install;
- without ``--gateways``, ``serve`` stays one process.
"""
import os
import re
import signal
import stat
import subprocess
import sys

import pytest

from actors.store import audit
from tests.serverproc import ROOT, ClusterProcess, children, exited
from tests.support import ServerProcess, wait_until
from tests.web.splitrig import ENV, Rig
from web.client import TapgridClient


class ClusterRig(Rig):
    """The split's rig (players tapping, every answer logged) on one
    ``serve --gateways`` instead of processes of its own."""

    def __init__(self, tmp_path, gateways=2):
        super().__init__(tmp_path)
        self.server = ClusterProcess(self.db, "--seed", "2", gateways=gateways, env=self.env)

    def start(self):
        self.server.start()
        self.gateways = [self.server]       # one address for every player
        return self

    def close(self):
        self._stop.set()
        for p in self.players_:
            p.c.close()
        pids = list(self.server.roles().values()) if self.server.alive() else []
        self.server.kill()
        for pid in pids:
            wait_until(lambda: exited(pid), 20, interval=0.05, what=f"child {pid} gone")


@pytest.fixture
def cluster(tmp_path):
    rigs = []

    def make(**kw):
        r = ClusterRig(tmp_path, **kw)
        rigs.append(r)
        return r.start()
    yield make
    for r in rigs:
        r.close()


@pytest.mark.timeout(120)
def test_two_gateways_serve_a_player_on_one_port(cluster, tmp_path):
    r = cluster(gateways=2)
    roles = r.server.roles()
    assert sorted(roles) == ["gateway-0", "gateway-1", "market", "redis"], roles
    # Redis is private: a Unix socket in a 0700 directory, no TCP port
    rdir = tmp_path / "redis"
    assert stat.S_IMODE(os.stat(rdir).st_mode) == 0o700
    assert stat.S_ISSOCK(os.stat(rdir / "redis.sock").st_mode)
    assert _listening_ports(roles["redis"]) == set()
    # Both gateways listen on the port the supervisor was given (SO_REUSEPORT).
    assert _listening_ports(roles["gateway-0"]) == {r.server.port}
    assert _listening_ports(roles["gateway-1"]) == {r.server.port}
    assert _listening_ports(roles["market"]) == set()

    c = TapgridClient(r.server.url, timeout=10)
    c.guest()
    me = c.me()
    c.connect()
    assert c.wait_for(lambda: c.grid is not None, 10)
    col, lo, _ = c.open_cell()
    ack = c.tap(col, lo, stake=500, min_mult=101)     # any odds: the grid moves meanwhile
    assert ack["ok"], ack
    assert ack["balance"] == me["balance"] - 500
    assert c.me()["balance"] == me["balance"] - 500
    c.close()


def _listening_ports(pid):
    """The TCP ports a process listens on (its socket fds vs /proc/net/tcp{,6})."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            m = re.match(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
        if m:
            inodes.add(m.group(1))
    ports = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            for line in f.read().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:        # 0A: LISTEN
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.mark.timeout(180)
def test_a_gateway_killed_with_sigkill_is_restarted_and_its_players_reconnect(cluster):
    r = cluster(gateways=2)
    # 16 players: the kernel spreads them over both gateways (all on one: 2 in 65,536)
    r.players(16)
    before = r.server.roles()
    victim = before["gateway-0"]
    os.kill(victim, signal.SIGKILL)
    restarted = wait_until(lambda: [p for n, p in r.server.roles().items()
                                    if n.startswith("gateway") and p not in before.values()],
                           30, interval=0.1, what="the gateway restarted")
    assert len(restarted) == 1 and before["gateway-1"] in r.server.roles().values()
    dropped = wait_until(lambda: [p for p in r.players_ if p.c.reconnects > 0], 30,
                         interval=0.05, what="the dead gateway's players reconnecting")
    wait_until(lambda: all(p.c.connected.is_set() for p in r.players_), 60, interval=0.05,
               what="every player connected again")
    assert dropped and len(dropped) < len(r.players_), "the other gateway's players dropped too"
    # every player taps and is acked, the reconnected ones too
    r.tapping(every=0.05)
    wait_until(lambda: all(any(e[4] and e[4]["ok"] for e in r.log if e[1] == i)
                           for i in range(len(r.players_))), 60, what="an ack for every player")
    r.stop_tapping()
    r.check_nothing_acked_was_lost()
    log = r.server.log()
    assert re.search(r"gateway-0 exited -9; restarting", log), log[-2000:]


@pytest.mark.timeout(180)
def test_sigterm_stops_gateways_then_market_then_redis_with_every_ack_durable(cluster):
    r = cluster(gateways=2)
    r.players(4)
    r.tapping(every=0.01)
    r.wait_acked(200)
    roles = r.server.roles()
    r.server.proc.send_signal(signal.SIGTERM)        # while players tap
    assert r.server.proc.wait(60) == 0, r.server.log()[-3000:]
    r.stop_tapping()
    for pid in roles.values():
        assert exited(pid)
    acked = r.check_nothing_acked_was_lost()
    assert acked >= 200
    assert audit(r.db) == []
    # the order: both gateways done before the market begins to stop; Redis last
    log = r.server.log()
    gw_done = [m.start() for m in re.finditer(r'"msg": "stopped"', log)]
    market_stop = log.index('"msg": "market stopping')
    market_done = log.index('"msg": "market stopped"')
    redis_bye = log.rindex("Redis is now ready to exit")
    assert len([i for i in gw_done if i < market_stop]) == 2, log[-3000:]
    assert market_done < redis_bye
    assert "stopped: {'gateway-0': 0, 'gateway-1': 0, 'market': 0, 'redis': 0}" in log
    # every tap was answered: acked, or refused with a reason (none lost without one)
    assert all(a["ok"] or a.get("reason") for a in r.answers())


@pytest.mark.timeout(180)
def test_children_die_with_a_supervisor_killed_with_sigkill(tmp_path):
    db = str(tmp_path / "k.db")
    s = ClusterProcess(db, "--seed", "1", gateways=2, env=ENV).start()
    roles = s.roles()
    assert len(roles) == 4
    s.kill()
    for name, pid in roles.items():
        wait_until(lambda: exited(pid), 30, interval=0.05, what=f"{name} gone with the supervisor")
    again = ClusterProcess(db, "--seed", "1", gateways=1, env=ENV, port=s.port).start()
    try:
        assert sorted(again.roles()) == ["gateway-0", "market", "redis"]
    finally:
        assert again.stop(60) == 0
    assert audit(db) == []


def test_without_redis_server_on_path_it_exits_saying_what_to_install(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    out = subprocess.run([sys.executable, "-m", "web.cli", "serve", "--gateways", "2",
                          "--db", str(tmp_path / "t.db"), "--port", "0"],
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT, PATH=str(empty)),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "redis-server is not installed" in out.stderr
    assert "apt-get install redis-server" in out.stderr and "--redis URL" in out.stderr
    assert "Traceback" not in out.stderr
    assert not os.path.exists(tmp_path / "t.db")    # nothing was started


def test_serve_without_gateways_stays_one_process(tmp_path):
    s = ServerProcess(str(tmp_path / "one.db"), "--seed", "1").start()
    try:
        assert children(s.pid) == []
    finally:
        assert s.stop() == 0
