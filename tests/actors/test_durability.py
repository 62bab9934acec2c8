"""kill -9 loop, 20 rounds (SPEC section 8): an acknowledged bet is never lost.

Each round starts the market in a child process (tests/actors/market_child.py),
streams taps at open cells (several every 10 ms), and SIGKILLs the child
after a random 0.2-1.5 s. Then, through a read-only connection: every bet
whose ok-ack reached us exists with the same column, band and stake, and the
audit finds no broken invariant. At the end one more start settles every
pending bet (void where the feed was down, lost/won otherwise) and the audit
still passes.
"""
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from actors.store._audit import audit
from actors._model import OPEN
from actors.store._store import open_readonly
from tests.support import wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHILD = os.path.join(ROOT, "tests", "actors", "market_child.py")
ROUNDS = 20          # SPEC section 8


class Child:
    """The market child with a reader thread collecting its JSON lines."""

    def __init__(self, db, seed):
        env = dict(os.environ, PYTHONPATH=ROOT)
        self.proc = subprocess.Popen(
            [sys.executable, CHILD, "--db", db, "--seed", str(seed)], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        self.ready = threading.Event()
        self.info = None
        self.grid = None
        self.acks = {}
        self.errors = []
        self.stderr = b""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.err_reader = threading.Thread(target=self._read_err, daemon=True)
        self.err_reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                self.errors.append(raw)   # a torn last line at the kill: ignore it
                continue
            kind = msg.get("type")
            if kind == "ready":
                self.info = msg
                self.ready.set()
            elif kind == "grid":
                self.grid = msg
            elif kind == "ack":
                self.acks[msg["id"]] = msg
            elif kind == "error":
                self.errors.append(msg)

    def _read_err(self):
        self.stderr = self.proc.stderr.read()

    def send(self, obj):
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.reader.join(10)
        self.err_reader.join(10)

    def close(self, timeout=20):
        """Clean stop: EOF on stdin."""
        self.proc.stdin.close()
        self.proc.wait(timeout)
        self.reader.join(10)
        self.err_reader.join(10)
        return self.proc.returncode


def open_cells(child, lock_ms):
    now = time.time() * 1000
    grid = child.grid
    if not grid:
        return []
    return [c for c in grid["cells"] if now < c[0] - lock_ms - 150]


def db_bets(db):
    conn = open_readonly(db)
    try:
        return {r[0]: r[1:] for r in conn.execute("SELECT id, col, lo, stake, outcome FROM bets")}
    finally:
        conn.close()


@pytest.mark.timeout(150)
def test_kill_9_never_loses_an_acknowledged_bet(tmp_path):
    db = str(tmp_path / "durable.db")
    rng = random.Random(20240607)
    sent = {}                  # tap id -> (col, lo, stake)
    acked = {}                 # bet id -> (col, lo, stake), over every round
    next_id = 0
    started = time.monotonic()
    for round_ in range(ROUNDS):
        child = Child(db, seed=round_)
        try:
            assert child.ready.wait(30), f"child not ready: {child.stderr[-2000:]!r}"
            lock_ms = child.info["lock_ms"]
            # The kill comes from another thread, so it lands anywhere: mid
            # batch, mid commit, between a commit and its acks.
            killer = threading.Timer(rng.uniform(0.2, 1.5), os.kill,
                                     (child.proc.pid, signal.SIGKILL))
            killer.start()
            while child.proc.poll() is None:
                cells = open_cells(child, lock_ms)
                try:
                    for _ in range(3 if cells else 0):
                        col, lo, _mult = rng.choice(cells)
                        next_id += 1
                        stake = rng.randrange(100, 2000)
                        sent[next_id] = (col, lo, stake)
                        child.send({"id": next_id, "col": col, "lo": lo, "stake": stake})
                except BrokenPipeError:
                    break
                time.sleep(0.01)     # pacing the taps (load shape), not synchronisation
            killer.join()
        finally:
            child.kill()
        oks = {i: a for i, a in child.acks.items() if a["ok"]}
        assert not [a for a in child.acks.values() if not a["ok"]
                    and a["reason"] not in ("column_closed", "market_suspended")], \
            list(child.acks.values())[:5]
        on_disk = db_bets(db)
        for tap_id, ack in oks.items():
            assert ack["bet"] not in acked, "a bet id acknowledged twice"
            acked[ack["bet"]] = sent[tap_id]
        missing = {b: want for b, want in acked.items()
                   if b not in on_disk or on_disk[b][:3] != want}
        assert not missing, f"round {round_}: acknowledged bets lost or changed: {missing}"
        problems = audit(db)
        assert problems == [], f"round {round_}: {problems}"
    assert len(acked) > ROUNDS * 5, "too few taps were acknowledged to prove anything"
    print(f"{len(acked)} bets acknowledged of {len(sent)} taps over {ROUNDS} kills")

    # One more start: every pending bet gets settled, exactly once.
    child = Child(db, seed=99)
    try:
        assert child.ready.wait(30), child.stderr[-2000:]
        column_ms = child.info["column_ms"]
        last_col = max(col for col, _, _ in acked.values())
        def all_past_settled():
            now = time.time() * 1000
            return (now > last_col + column_ms + 2000
                    and not [b for b, (col, _, _, outcome) in db_bets(db).items()
                             if outcome == OPEN and col + column_ms < now - 2000])

        wait_until(all_past_settled, timeout=30, interval=0.2, what="every past bet to settle")
        bets = db_bets(db)
        assert not [b for b, row in bets.items() if row[3] == OPEN]
        assert audit(db) == []
        assert child.close() == 0, child.stderr[-2000:]
    finally:
        if child.proc.poll() is None:
            child.kill()
    for bet, want in acked.items():
        assert bets[bet][:3] == want
    assert audit(db) == []
    assert time.monotonic() - started < 140
