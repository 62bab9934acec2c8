"""A market, gateways and a redis-server of a test's own, as real processes
on loopback, and players tapping through them (web/client.py) with every
tap's answer logged by phase. The failure tests of the split use it.

    rig = Rig(tmp_path, gateways=2).start()
    rig.players(3)                       # per gateway
    rig.tapping()                        # each player taps every 20 ms
    rig.phase("gap"); ...; rig.stop_tapping()
    rig.check_nothing_acked_was_lost()
"""
import json
import random
import signal
import sqlite3

import gevent

from actors.store import nonce_text
from tests.serverproc import LOAD_ENV, GatewayProcess, MarketProcess
from tests.support import wait_until
from tests.web.auth.test_replay_redis import RedisProcess
from web.client import TapgridClient

ENV = dict(LOAD_ENV, TAPGRID_SESSION_SECRET="split-test-secret", TAPGRID_BUS_TAP_WAIT_MS="1500")


def answer(fut):
    try:
        return fut.result()
    except Exception:          # the connection dropped: never acked
        return {"ok": False, "reason": "lost"}


class Player:
    def __init__(self, gw_index, client):
        self.gw = gw_index
        self.c = client
        self.disconnects = 0
        client.on_event = None


class Rig:
    def __init__(self, tmp_path, gateways=2, env=None, seed=2, market_args=()):
        self.tmp = tmp_path
        self.redis = RedisProcess(tmp_path)
        self.env = dict(ENV, **(env or {}))
        self.db = str(tmp_path / "market.db")
        self.seed = seed
        self.market_args = tuple(market_args)      # e.g. ("--markets", "BTC-USD/5s,ETH-USD/5s")
        self.market = None
        self.gateways = []
        self.n_gateways = gateways
        self.players_ = []
        self.log = []              # [phase, player index, frame text, nonce, answer or None]
        self.now = "up"
        self._stop = gevent.event.Event()
        self._workers = []

    # --- processes ---------------------------------------------------------------------

    def start(self):
        self.redis.start()
        self.start_market()
        for i in range(self.n_gateways):
            gw = GatewayProcess(str(self.tmp / f"gateway{i}.db"), "--redis", self.redis.url,
                                env=dict(self.env, TAPGRID_GATEWAY_ID=f"gw{i}"))
            self.gateways.append(gw.start())
        return self

    def start_market(self):
        self.market = MarketProcess(self.db, self.redis.url, "--seed", str(self.seed),
                                    *self.market_args, env=self.env, log_path=self.db + f".{len(self.log)}.log")
        self.market.start()
        return self.market

    def kill9(self, proc):
        proc.proc.send_signal(signal.SIGKILL)
        proc.proc.wait(5)

    def close(self):
        self._stop.set()
        for p in self.players_:
            p.c.close()
        for gw in self.gateways:
            gw.kill()
        if self.market is not None:
            self.market.kill()
        self.redis.kill()

    # --- players -----------------------------------------------------------------------

    def players(self, per_gateway, backoff_base=0.2):
        for i, gw in enumerate(self.gateways):
            for _ in range(per_gateway):
                c = TapgridClient(gw.url, backoff_base=backoff_base, backoff_cap=1.0)
                c.guest()
                c.connect()
                assert c.wait_for(lambda c=c: c.grid is not None, 10)
                self.players_.append(Player(i, c))
        return self.players_

    def phase(self, name):
        self.now = name

    def tapping(self, every=0.02, only=None):
        for i, p in enumerate(self.players_):
            if only is None or p.gw in only:
                self._workers.append(gevent.spawn(self._tapper, i, p, every))

    def _tapper(self, i, p, every):
        rng = random.Random(i)
        c = p.c
        while not self._stop.is_set():
            # In the gap a tap waits for the restarted market: it aims at a column
            # that is still open after the restart, or it could only be column_closed.
            margin = 6000 if self.now == "gap" else 800
            cell = c.open_cell(rng.randint(-1, 2), margin_ms=margin) if c.connected.is_set() else None
            if cell:
                frame, nonce = c.signed_tap(cell[0], cell[1], 100, 101)
                entry = [self.now, i, json.dumps(frame, separators=(",", ":")), nonce, None]
                try:
                    fut = c.tap_async(cell[0], cell[1], 100, frame=frame)
                except Exception:
                    entry[4] = {"ok": False, "reason": "lost"}
                else:
                    fut.add_done_callback(lambda f, e=entry: e.__setitem__(4, answer(f)))
                self.log.append(entry)
            gevent.sleep(every)

    def stop_tapping(self, timeout=20):
        self._stop.set()
        gevent.joinall(self._workers, timeout=10)
        self._workers = []
        wait_until(lambda: all(e[4] for e in self.log), timeout=timeout, what="every tap answered")
        self._stop = gevent.event.Event()

    def answers(self, phase=None, gw=None):
        return [e[4] for e in self.log if e[4] and (phase is None or e[0] == phase)
                and (gw is None or self.players_[e[1]].gw == gw)]

    def acked(self, phase=None, gw=None):
        return sum(1 for a in self.answers(phase, gw) if a["ok"])

    def wait_acked(self, n, phase=None, gw=None, timeout=30):
        wait_until(lambda: self.acked(phase, gw) >= n, timeout=timeout,
                   what=f"{n} acks in {phase or 'the run'}")

    # --- the checks ---------------------------------------------------------------------

    def stored(self):
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return {nonce_text(n): bid for bid, n in conn.execute("SELECT id, nonce FROM bets")}
        finally:
            conn.close()

    def check_nothing_acked_was_lost(self):
        """Every ok ack is one bet in the database, with its nonce and id."""
        stored = self.stored()
        acked = [e for e in self.log if e[4]["ok"]]
        assert acked, "nothing was acked"
        missing = [e[3] for e in acked if stored.get(e[3]) != e[4]["bet"]]
        assert not missing, f"{len(missing)} acked taps are not in the database: {missing[:5]}"
        return len(acked)
