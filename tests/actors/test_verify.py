"""`tapgrid verify`: a market settles real signed bets from three sources
(wins, losses, and voids across a period below the quorum); the database
verifies, before and after the bets and their price record are archived;
a tampered outcome, payout, tick or signature is each named, and the
command exits 1."""
import os
import random
import shutil
import subprocess
import sys

import pysqlite3.dbapi2 as sqlite3
import pytest

from actors.archive import archive_offline, open_file
from actors._config import Config
from actors._model import LOST, OPERATOR_SIG, VOID, WON, Tap
from actors._runtime import start_market
from actors.store import Store, open_readonly
from actors._verify import VerifyError, verify
from engine import ActorSystem
from tests.actors.test_resolver import BAND, BASE, PushFeed, Results, mid
from tests.support import wait_until
from actors.wire import (SessionSigner, b64url_decode, b64url_encode, encode_tap_payload,
                          load_session_key, verify_tap)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DAY_MS = 86_400_000


def check(key, payload, sig):
    return verify_tap(load_session_key(key), payload, b64url_encode(sig))


def cfg_for(db):
    return Config(db=db, sources=["sim"] * 3, quorum=2, divergence_bp=100, column_ms=1000,
                  lock_ms=300, horizon_ms=3000, tick_interval_ms=100, band_cents=BAND,
                  max_bands=10)


def signed_tap(market, signer, user, col, lo, stake=1000):
    ts = market.ctx.now()
    nonce = b64url_encode(os.urandom(12))
    payload = encode_tap_payload(col, lo, stake, 101, ts, nonce)
    return Tap(user, col, lo, stake, 101, ts, nonce, b64url_decode(signer.sign(payload)))


def next_col(market, after=0):
    def pick():
        now = market.ctx.now()
        cols = [c for c in sorted(market.grid.columns)
                if c > after and now < c - market.cfg.lock_ms - 150]
        return cols[0] if cols else None
    return wait_until(pick, what="an open column")


@pytest.fixture(scope="module")
def settled_db(tmp_path_factory):
    """A closed database with won, lost and void bets, all signed."""
    db = str(tmp_path_factory.mktemp("verify") / "tapgrid.db")
    system = ActorSystem()
    feeds = [PushFeed(mid(0) - 20, 40), PushFeed(mid(0), 40), PushFeed(mid(0) + 30, 40)]
    results = Results()
    market = start_market(system, cfg_for(db), sinks=results, feed=feeds)
    try:
        assert market.wait_ready(10)
        signer = SessionSigner.generate()
        alice = market.create_user("alice", 1_000_000)
        market.save_session((b"t" * 32, alice, signer.public_raw, market.ctx.now() + 3_600_000))
        placed = []
        # column A: the price sits in band 0 (wins at once); bands +2, -3 lose
        a = next_col(market)
        for off in (0, 2, -3):
            placed.append(market.place(signed_tap(market, signer, alice, a, BASE + off * BAND)))
        # column B: two sources stall inside it (below the quorum): void
        b = a + 1000
        for off in (1, -2):
            placed.append(market.place(signed_tap(market, signer, alice, b, BASE + off * BAND)))
        acks = [f.get(5) for f in placed]
        assert all(ack.reason is None for ack in acks), acks
        wait_until(lambda: market.ctx.now() > b + 200, timeout=10, what="inside column B")
        feeds[0].pause()
        feeds[1].pause()
        wait_until(lambda: market.status.holds("stale_price"), what="below the quorum")
        feeds[0].resume()
        feeds[1].resume()
        wait_until(lambda: market.status.is_open, what="open again")
        wait_until(lambda: len(results.by_bet) == len(acks), timeout=15, what="all settled")
    finally:
        system.stop()
    outcomes = sorted(s.outcome for s, _ in results.by_bet.values())
    assert outcomes == [WON, LOST, LOST, VOID, VOID]
    return db


def copy_of(db, tmp_path):
    path = str(tmp_path / "copy.db")
    shutil.copy(db, path)
    return path


def test_a_clean_database_verifies(settled_db, tmp_path):
    db = copy_of(settled_db, tmp_path)
    report = verify(db, cfg_for(db), check)
    assert report["bets"] == 5 and report["windows"] == 2 and report["ticks"] > 20
    conn = open_readonly(db)
    try:
        # the stall made one span; a loop lagging past 2 ticks on a loaded box may add more
        assert conn.execute("SELECT count(*) FROM stale_spans").fetchone()[0] >= 1
        assert conn.execute("SELECT count(*) FROM ticks WHERE src IS NULL").fetchone()[0] == 0
    finally:
        conn.close()
    cols = sorted(c for (c,) in sqlite3.connect(db).execute("SELECT DISTINCT col FROM bets"))
    assert verify(db, cfg_for(db), check, from_ms=cols[1])["bets"] == 2    # --from
    assert verify(db, cfg_for(db), check, to_ms=cols[1])["bets"] == 3      # --to


def tampered(settled_db, tmp_path, sql):
    db = copy_of(settled_db, tmp_path)
    conn = sqlite3.connect(db)
    conn.execute(sql)
    conn.commit()
    conn.close()
    return db


def resigned(settled_db, tmp_path, bid, sig, name="copy.db"):
    """A copy of the database in which bet ``bid`` carries ``sig``."""
    db = str(tmp_path / name)
    shutil.copy(settled_db, db)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE bets SET sig = ? WHERE id = ?", (sig, bid))
    conn.commit()
    conn.close()
    return db


def failure(db):
    with pytest.raises(VerifyError) as e:
        verify(db, cfg_for(db), check)
    return str(e.value)


def test_a_tampered_outcome_is_named(settled_db, tmp_path):
    lost = sqlite3.connect(settled_db).execute(
        f"SELECT min(id) FROM bets WHERE outcome = {LOST}").fetchone()[0]
    db = tampered(settled_db, tmp_path, f"UPDATE bets SET outcome = {WON}, payout = stake * mult"
                                        f" / 100 WHERE id = {lost}")
    msg = failure(db)
    assert msg.startswith(f"outcome: bet {lost} (the hot DB) is won, the record says lost"), msg


def test_a_tampered_payout_is_named(settled_db, tmp_path):
    won = sqlite3.connect(settled_db).execute(
        f"SELECT id FROM bets WHERE outcome = {WON}").fetchone()[0]
    db = tampered(settled_db, tmp_path, f"UPDATE bets SET payout = payout + 1 WHERE id = {won}")
    assert failure(db).startswith(f"payout: bet {won} (the hot DB) paid"), failure(db)


def test_a_tampered_tick_is_named(settled_db, tmp_path):
    conn = sqlite3.connect(settled_db)
    col = conn.execute("SELECT min(col) FROM bets").fetchone()[0]
    ts = conn.execute("SELECT min(ts) FROM ticks WHERE ts > ?", (col,)).fetchone()[0]
    conn.close()
    # the price moved to where the losing band +2 is: no longer the median
    db = tampered(settled_db, tmp_path, f"UPDATE ticks SET price = price + 2000 WHERE ts = {ts}")
    assert failure(db).startswith(f"tick: {ts} (the hot DB): price"), failure(db)
    # ...and with its sources rewritten to match, the outcomes no longer do
    db = tampered(settled_db, tmp_path, f"UPDATE ticks SET price = price + 2000, src = NULL"
                                        f" WHERE ts = {ts}")
    assert failure(db).startswith("outcome: bet "), failure(db)


def test_a_tampered_signature_is_named(settled_db, tmp_path):
    bid, sig = sqlite3.connect(settled_db).execute(
        "SELECT id, sig FROM bets ORDER BY id LIMIT 1 OFFSET 2").fetchone()
    db = resigned(settled_db, tmp_path, bid, bytes([sig[0] ^ 1]) + bytes(sig[1:]))
    assert failure(db).startswith(f"signature: bet {bid} (the hot DB) of user"), failure(db)
    # a bet whose stake was raised no longer matches what the player signed
    db = tampered(settled_db, tmp_path, f"UPDATE bets SET stake = stake * 2, payout = (CASE"
                                        f" outcome WHEN {WON} THEN stake * 2 * mult / 100 WHEN {VOID}"
                                        f" THEN stake * 2 ELSE 0 END) WHERE id = {bid}")
    assert failure(db).startswith(f"signature: bet {bid}"), failure(db)
    # and a key the user never held does not count
    db = tampered(settled_db, tmp_path, "DELETE FROM session_keys")
    assert failure(db).startswith("signature: bet "), failure(db)


def test_an_operator_bet_is_named_unless_accepted_and_then_listed(settled_db, tmp_path):
    """A console bet carries OPERATOR_SIG, as MarketHandle.tap writes it."""
    bid = sqlite3.connect(settled_db).execute(
        "SELECT id FROM bets ORDER BY id LIMIT 1 OFFSET 1").fetchone()[0]
    db = resigned(settled_db, tmp_path, bid, OPERATOR_SIG)
    assert failure(db).startswith(f"signature: bet {bid} (the hot DB) of user"), failure(db)
    assert "operator" in failure(db)
    report = verify(db, cfg_for(db), check, operator_bets=True)
    assert report["bets"] == 5 and report["operator_bets"] == [bid]
    # accepting operator bets does not accept a forged player signature
    forged = resigned(settled_db, tmp_path, bid, bytes(63) + b"\x01", name="forged.db")
    with pytest.raises(VerifyError):
        verify(forged, cfg_for(forged), check, operator_bets=True)
    flags = ["--band-cents", str(BAND), "--column-ms", "1000", "--tick-interval-ms", "100"]
    out = run_cli("verify", "--db", db, *flags)
    assert out.returncode == 1 and "operator" in out.stderr, out
    out = run_cli("verify", "--db", db, "--operator-bets", *flags)
    assert out.returncode == 0, out
    assert f"1 placed by the operator from the console, with no player signature: bets {bid}" \
        in out.stdout, out


def test_a_console_tap_carries_the_operator_signature(tmp_path):
    system = ActorSystem()
    db = str(tmp_path / "tapgrid.db")
    market = start_market(system, cfg_for(db), feed=[PushFeed(mid(0), 40)] * 1)
    try:
        assert market.wait_ready(10)
        alice = market.create_user("alice", 100_000)
        ack = market.tap(alice, next_col(market), BASE, 1000).get(5)
        assert ack.reason is None, ack
    finally:
        system.stop()
    sigs = [bytes(s) for (s,) in sqlite3.connect(db).execute("SELECT sig FROM bets")]
    assert sigs == [OPERATOR_SIG]


def test_archived_bets_verify_with_their_record(settled_db, tmp_path):
    db = copy_of(settled_db, tmp_path)
    cols = [c for (c,) in sqlite3.connect(db).execute("SELECT DISTINCT col FROM bets")]
    later = max(cols) + 8 * DAY_MS
    report = archive_offline(Config(db=db), now_ms=later)
    assert report["errors"] == [] and len(report["files"]) >= 1
    assert report["ticks_archived"] > 20 and report["ticks_pruned"] > 20
    conn = open_readonly(db)
    try:
        assert conn.execute("SELECT count(*) FROM bets").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM ticks").fetchone()[0] == 0   # pruned
    finally:
        conn.close()
    adir = os.path.join(os.path.dirname(db), "archive")
    in_files = spans = 0
    for name in report_files(db):
        fconn = open_file(adir, name)
        in_files += fconn.execute("SELECT count(*) FROM ticks").fetchone()[0]
        spans += fconn.execute("SELECT count(*) FROM stale_spans").fetchone()[0]
        fconn.close()
    assert in_files == report["ticks_archived"] and spans >= 1
    report = verify(db, cfg_for(db), check)
    assert report["bets"] == 5 and report["files"] == len(report_files(db)) >= 1
    assert report["ticks"] > 20 and report["skipped_files"] == []
    # a file shipped away is named as not checked, not passed off as verified
    for name in report_files(db):
        adir = os.path.join(os.path.dirname(db), "archive")
        os.rename(os.path.join(adir, name + ".xz"), os.path.join(adir, name + ".away"))
    report = verify(db, cfg_for(db), check)
    assert report["bets"] == 0 and report["skipped_files"] == report_files(db)


def report_files(db):
    return [n for (n,) in sqlite3.connect(db).execute("SELECT name FROM archive_files"
                                                       " ORDER BY id")]


def test_prune_keeps_what_hot_bets_need(settled_db, tmp_path):
    db = copy_of(settled_db, tmp_path)
    conn = sqlite3.connect(db)
    first_col = conn.execute("SELECT min(col) FROM bets").fetchone()[0]
    # ticks no bet needs: 10 days before the bets (pruned), 3 days (within hot_days: kept)
    old = [(first_col - 10 * DAY_MS + i * 1000, BASE, None) for i in range(500)]
    recent = [(first_col - 3 * DAY_MS + i * 1000, BASE, None) for i in range(100)]
    conn.executemany("INSERT INTO ticks VALUES (?,?,?)", old + recent)
    conn.commit()
    n_before = conn.execute("SELECT count(*) FROM ticks").fetchone()[0]
    conn.close()
    report = archive_offline(Config(db=db), now_ms=first_col + DAY_MS)   # bets still hot
    assert report["ticks_pruned"] == 500
    conn = open_readonly(db)
    try:
        assert conn.execute("SELECT count(*) FROM ticks").fetchone()[0] == n_before - 500
        assert conn.execute("SELECT min(ts) FROM ticks").fetchone()[0] == recent[0][0]
    finally:
        conn.close()
    assert verify(db, cfg_for(db), check)["bets"] == 5


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "web.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_the_command_exits_1_naming_the_first_mismatch(settled_db, tmp_path):
    db = copy_of(settled_db, tmp_path)
    flags = ["--band-cents", str(BAND), "--column-ms", "1000", "--tick-interval-ms", "100"]
    ok = run_cli("verify", "--db", db, *flags)
    assert ok.returncode == 0 and ok.stdout.startswith("verify ok: 5 settled bets"), ok
    bad = tampered(settled_db, tmp_path, "UPDATE bets SET payout = payout + 7 WHERE id = 1")
    out = run_cli("verify", "--db", bad, *flags)
    assert out.returncode == 1 and out.stderr.startswith("verify FAILED: payout: bet 1"), out
    assert "Traceback" not in out.stderr


def test_a_database_from_before_the_record_is_upgraded(tmp_path):
    db = str(tmp_path / "old.db")
    conn = sqlite3.connect(db)
    conn.executescript("""
        CREATE TABLE ticks(ts INTEGER PRIMARY KEY, price INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE sessions(token BLOB PRIMARY KEY, user INTEGER NOT NULL,
                              session_key BLOB NOT NULL, expires INTEGER NOT NULL) WITHOUT ROWID;
        INSERT INTO ticks VALUES (1000, 9500000);
        INSERT INTO sessions VALUES (x'01', 7, x'04aa', 5000), (x'02', 7, x'04aa', 9000);""")
    conn.commit()
    conn.close()
    Store(db).close()
    conn = open_readonly(db)
    try:
        assert conn.execute("SELECT ts, price, src FROM ticks").fetchall() == [(1000, 9500000, None)]
        assert conn.execute("SELECT user, key, created, expires FROM session_keys").fetchall() == \
            [(7, b"\x04\xaa", 0, 9000)]
        assert conn.execute("SELECT count(*) FROM stale_spans").fetchone()[0] == 0
    finally:
        conn.close()


# -- the rule verify shares with the Resolver --------------------------------------------

from actors._resolver import outcome_for, window_path  # noqa: E402

T0, T1, SA, B = 10_000, 11_000, 200, 100


def outcomes(ticks, spans=()):
    path = window_path(ticks, list(spans), T0, T1, SA)
    return {lo: outcome_for(lo, B, path) for lo in range(500, 1600, B)}


def test_an_instant_win_stands_when_the_window_goes_stale_later():
    steady = [(9_900, 1000), (10_050, 1000), (10_200, 1250), (10_350, 1000)]
    # touched band 1200 at 10_200, then the feed stopped (stale from 10_400)
    got = outcomes(steady)
    assert got[1200] == WON and got[1000] == WON and got[1400] == VOID
    # stale first (a recorded span), then the touch: void, not won
    got = outcomes(steady, [(10_100, 10_150)])
    assert got[1200] == VOID and got[1000] == WON   # 1000 was touched at 10_050, before it


def test_a_tick_right_after_a_gap_starts_no_clean_path():
    # the prevailing price is 600 ms old when the window opens; a tick at t0 itself
    got = outcomes([(9_400, 1000), (10_000, 1000), (10_150, 1000), (10_300, 1000),
                    (10_450, 1000), (10_600, 1000), (10_750, 1000), (10_900, 1000)])
    assert set(got.values()) == {VOID}


def test_the_record_verify_reads_decides_the_same():
    """verify reads 2 x stale_after (+1 ms) of record before each window;
    any record gives the same outcomes as with all of it."""
    rng = random.Random(11)
    for _ in range(400):
        ticks, t = [], T0 - rng.randint(0, 3000)
        price = 1000
        while t < T1 + 300:
            ticks.append((t, price))
            t += rng.choice((50, 100, 150, 190, 210, 300, 450, 800))
            price += rng.randint(-60, 60)
        spans = [(s, s + rng.randint(1, 300)) for s in rng.sample(range(9_000, 11_000), 1)] \
            if rng.random() < 0.3 else []
        trimmed = [x for x in ticks if T0 - 2 * SA - 1 <= x[0] < T1]     # what verify reads
        assert outcomes(ticks, spans) == outcomes(trimmed, spans), (ticks, spans)
