"""Retention (issue 6): the compact hot schema, the archiver, history and
audit across the hot DB and archive files, shipping, and kill -9 mid-archive.

Old bets are written straight through ``Store`` with columns days in the
past, then archived with the real ``archive_offline`` (what ``tapgrid
archive`` runs) or the server's Archiver actor (deletes through the Writer).
"""
import os
import random
import signal
import subprocess
import sys
import time

import gevent
import pysqlite3.dbapi2 as sqlite3
import pytest

from actors.archive._job import COMPRESSED, COPIED, DAY_MS, REMOVED, SHIPPED
from actors.archive._runner import archive_offline
from actors.archive._files import archive_dir_of, open_file
from actors.store._audit import audit
from actors._config import Config
from actors.feeds._local import SimFeed
from actors._model import LOST, VOID, WON, Bet, Settlement, payout_for
from actors.store._offline import history_offline
from actors.store._betrows import nonce_text
from actors.store._receipt import history, next_cursor
from actors._runtime import start_market
from actors.store._store import Store, open_readonly
from engine import ActorSystem
from tests.support import ROOT, wait_until

NOW = 1_800_000_000_000 // DAY_MS * DAY_MS + 43_200_000      # noon UTC, a fixed "now"
NONCE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij0123456789_-"


def make_db(path, days=10, per_day=1500, users=12, now=NOW, seed=1, open_old=0,
            span_max_bets=40_000):
    """Bets spread evenly over the ``days`` UTC days before ``now``, settled
    (won, lost or void) except the last hour's and ``open_old`` old ones.
    Returns {bet id: Bet}."""
    rng = random.Random(seed)
    store = Store(path, synchronous="OFF", span_max_bets=span_max_bets)
    uids = [store.ensure_user(f"u{i}", credit=10 ** 9, now=0) for i in range(users)]
    start = (now // DAY_MS - days) * DAY_MS
    n = days * per_day
    bets = []
    for i in range(n):
        placed = start + i * (days * DAY_MS) // n
        col = (placed + rng.randint(3000, 60000)) // 5000 * 5000
        mult = rng.choice((101, 150, 235, 480, 900))
        ts = placed - rng.randint(5, 80)
        nonce = "".join(rng.choices(NONCE_CHARS, k=rng.choice((16, 16, 11))))
        bets.append(Bet(rng.choice(uids), col, 9_500_000 + 1000 * rng.randint(-20, 20),
                        rng.choice((100, 250, 1000)), mult, mult - rng.choice((0, 0, 5)), ts,
                        nonce, rng.randbytes(64), placed))
    ids = []
    for i in range(0, n, 5000):
        ids += store.write_batch(bets=bets[i:i + 5000], now=0)[0]
    stuck = set(rng.sample(range(per_day), open_old))      # all on the first day
    settle = []
    for k, (bid, b) in enumerate(zip(ids, bets)):
        if b.col > now - 3_600_000 or k in stuck:
            continue
        o = rng.choice((WON, LOST, LOST, VOID))
        pay = {WON: payout_for(b.stake, b.mult), LOST: 0, VOID: b.stake}[o]
        settle.append((b.col + 5000 + rng.randint(0, 900),
                       Settlement(bid, b.user, b.col, b.lo, b.stake, b.mult, o, pay)))
    settle.sort(key=lambda x: x[0])
    for i in range(0, len(settle), 2000):
        chunk = settle[i:i + 2000]
        store.write_batch(settlements=[s for _, s in chunk], now=chunk[-1][0])
    store.close()
    return dict(zip(ids, bets)), [bets[k] for k in sorted(stuck)]


def full_history(db, user, limit=50):
    """Every receipt of ``user``, page by page through the cursor, as /api/history does."""
    conn = open_readonly(db)
    uid = conn.execute("SELECT id FROM users WHERE name=?", (user,)).fetchone()[0]
    out, cursor = [], None
    try:
        while True:
            page = history(conn, uid, cursor, limit)
            out += page
            cursor = next_cursor(page, limit)
            if cursor is None:
                return out
    finally:
        conn.close()


def archivable(tmp_path, user):
    """A small hot database of nine days with its archive directory made:
    (db, bets, ``user``'s whole history before any archiving, adir)."""
    db = str(tmp_path / "hot.db")
    bets, _ = make_db(db, days=9, per_day=300, users=5)
    want = full_history(db, user)
    adir = archive_dir_of(None, db)
    os.makedirs(adir)
    return db, bets, want, adir


def hot_ids(db):
    conn = open_readonly(db)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM bets")}
    finally:
        conn.close()


def archive_ids(db, adir):
    """{file name: (state, set of bet ids in it)} for recorded, local files."""
    conn = open_readonly(db)
    try:
        files = conn.execute("SELECT name, state FROM archive_files ORDER BY id").fetchall()
    finally:
        conn.close()
    out = {}
    for name, state in files:
        fc = open_file(adir, name)
        if fc is None:
            out[name] = (state, None)
            continue
        try:
            out[name] = (state, {r[0] for r in fc.execute("SELECT id FROM bets")})
        finally:
            fc.close()
    return out


def test_hot_rows_are_compact_and_read_back_whole(db_path):
    bets, _ = make_db(db_path, days=1, per_day=300)
    conn = open_readonly(db_path)
    try:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(bet_rows)")]
        assert "payout" not in cols and "settled" not in cols and "placed" not in cols
        for bid, b in bets.items():
            row = conn.execute("SELECT user, col, lo, stake, mult, min_mult, ts, nonce, sig,"
                               " placed FROM bets WHERE id=?", (bid,)).fetchone()
            assert row == (b.user, b.col, b.lo, b.stake, b.mult, b.min_mult, b.ts, b.nonce,
                           b.sig, b.placed)
        # settled rows derive their payout: nothing stored for it
        assert conn.execute("SELECT count(*) FROM bet_rows WHERE pay_adj != 0").fetchone() == (0,)
    finally:
        conn.close()
    assert audit(db_path) == []


def test_archive_files_pack_nonces_that_base64url_spells_back(db_path):
    """The copy runs in SQL (INSERT ... SELECT): the nonce is still packed
    on the way (12 bytes for 16 characters), the 11-character ones stay text,
    and every one reads back as the text that was signed."""
    bets, _ = make_db(db_path, days=9, per_day=400)
    report = archive_offline(Config(db=db_path), now_ms=NOW)
    assert report["errors"] == [] and report["bets"] > 0
    adir = archive_dir_of(None, db_path)
    kinds = set()
    for name in archive_ids(db_path, adir):
        conn = open_file(adir, name)
        try:
            for bid, stored, nonce in conn.execute("SELECT f.id, f.nonce, b.nonce FROM bet_rows f"
                                                   " JOIN bets b ON b.id = f.id"):
                assert nonce_text(nonce) == bets[bid].nonce
                if len(bets[bid].nonce) == 16:
                    assert isinstance(stored, bytes) and len(stored) == 12
                else:
                    assert isinstance(stored, str)
                kinds.add(type(stored))
        finally:
            conn.close()
    assert kinds == {bytes, str}
    assert audit(db_path) == []


def test_archive_moves_old_settled_bets_and_history_is_unchanged(db_path):
    bets, _ = make_db(db_path, days=10, per_day=1500)
    before = {u: full_history(db_path, u) for u in ("u0", "u5")}
    report = archive_offline(Config(db=db_path), now_ms=NOW)
    assert report["errors"] == [] and len(report["files"]) == 3   # 10 days, 7 kept hot
    adir = archive_dir_of(None, db_path)
    files = archive_ids(db_path, adir)
    assert all(state == COMPRESSED for state, _ in files.values())
    assert sorted(os.listdir(adir)) == sorted([n + ".xz" for n in files] + [".cache", ".lock"])
    hot = hot_ids(db_path)
    archived = set().union(*(ids for _, ids in files.values()))
    assert hot | archived == set(bets) and not hot & archived
    cutoff = (NOW // DAY_MS - 7) * DAY_MS
    assert all(bets[b].col < cutoff for b in archived)
    assert all(bets[b].col >= cutoff for b in hot)
    assert audit(db_path) == []
    for user, want in before.items():
        assert full_history(db_path, user) == want                 # every page identical
        assert full_history(db_path, user, limit=7) == want        # cursor across files
    # a second run finds nothing to do
    again = archive_offline(Config(db=db_path), now_ms=NOW)
    assert again["files"] == [] and again["bets"] == 0
    # and ids are never reused, even with the hot DB empty of old bets
    store = Store(db_path)
    assert store.next_bet_id == max(bets) + 1
    store.close()


def test_a_stuck_open_bet_stays_hot_and_leaves_once_settled(db_path):
    bets, stuck = make_db(db_path, days=9, per_day=800, open_old=2)
    archive_offline(Config(db=db_path), now_ms=NOW)
    hot = hot_ids(db_path)
    stuck_ids = [b for b, bet in bets.items() if bet in stuck]
    assert set(stuck_ids) <= hot
    assert audit(db_path) == []
    store = Store(db_path)
    store.write_batch(settlements=[Settlement(b, bets[b].user, bets[b].col, bets[b].lo,
                                              bets[b].stake, bets[b].mult, VOID, bets[b].stake)
                                   for b in stuck_ids], now=NOW)
    store.close()
    report = archive_offline(Config(db=db_path), now_ms=NOW)
    assert len(report["files"]) == 1 and report["bets"] == 2     # a small straggler part
    assert not set(stuck_ids) & hot_ids(db_path)
    assert audit(db_path) == []
    user = f"u{bets[stuck_ids[0]].user - 1}"
    got = {b["bet"]: b for b in full_history(db_path, user)}
    assert got[stuck_ids[0]]["outcome"] == "void"


def test_archive_cmd_ships_and_retention_deletes_only_after_success(db_path, tmp_path):
    make_db(db_path, days=9, per_day=600)
    cold = tmp_path / "cold"
    cold.mkdir()
    adir = archive_dir_of(None, db_path)
    failed = archive_offline(Config(db=db_path, archive_cmd="false",
                                    archive_delete_shipped=True), now_ms=NOW)
    assert failed["shipped"] == 0 and len(failed["errors"]) == 2
    assert all(st == COMPRESSED for st, _ in archive_ids(db_path, adir).values())
    before = full_history(db_path, "u1")
    cfg = Config(db=db_path, archive_cmd=f"cp {{file}} {cold}/", archive_delete_shipped=False)
    shipped = archive_offline(cfg, now_ms=NOW)
    assert shipped["shipped"] == 2 and shipped["errors"] == []
    assert sorted(os.listdir(cold)) == sorted(f for f in os.listdir(adir) if f.endswith(".xz"))
    assert all(st == SHIPPED for st, _ in archive_ids(db_path, adir).values())
    assert full_history(db_path, "u1") == before
    removed = archive_offline(cfg.replace(archive_delete_shipped=True), now_ms=NOW)
    assert removed["removed"] == 2
    assert not [f for f in os.listdir(adir) if f.startswith("bets-")]
    assert all(st == REMOVED for st, _ in archive_ids(db_path, adir).values())
    # the balances still prove out from the hot DB's totals alone
    assert audit(db_path) == []
    # bring a file back from cold storage: it is read again
    for f in os.listdir(cold):
        os.link(cold / f, os.path.join(adir, f))
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE archive_files SET state = ?", (SHIPPED,))
    conn.commit()
    conn.close()
    assert full_history(db_path, "u1") == before
    assert audit(db_path) == []


def test_audit_checks_archive_files_against_the_hot_totals(db_path):
    make_db(db_path, days=8, per_day=600)
    archive_offline(Config(db=db_path), now_ms=NOW)
    assert audit(db_path) == []
    conn = sqlite3.connect(db_path)
    name, fid = conn.execute("SELECT name, id FROM archive_files").fetchone()
    user = conn.execute("SELECT user FROM archived WHERE file=? LIMIT 1", (fid,)).fetchone()[0]
    # moved totals that do not match the file (and so no longer the balance)
    conn.execute("UPDATE archived SET stakes = stakes + 1 WHERE user=? AND file=?", (user, fid))
    conn.commit()
    problems = audit(db_path)
    assert problems[0].startswith(f"balance: user {user}")
    assert any(p.startswith(f"archive: {name}: user {user}") for p in problems)
    conn.execute("UPDATE archived SET stakes = stakes - 1 WHERE user=? AND file=?", (user, fid))
    conn.commit()
    conn.close()
    assert audit(db_path) == []
    # a file that lost a row: count and checksum disagree with the record
    adir = archive_dir_of(None, db_path)
    rewrite_file(adir, name, "DELETE FROM bet_rows WHERE id = (SELECT min(id) FROM bet_rows)")
    problems = audit(db_path)
    assert problems and problems[0].startswith(f"archive: {name} holds")


def rewrite_file(adir, name, sql):
    """Change archive file ``name`` behind the archiver's back: unpack it,
    run ``sql`` on it, pack it again (format 3), drop the cached copies."""
    from actors.archive._columns import pack_steps, unpack
    from actors.archive._files import fsync_dir
    xz = os.path.join(adir, name + ".xz")
    plain = os.path.join(adir, "tmp-" + name)
    unpack(xz, plain)
    fc = sqlite3.connect(plain)
    fc.execute(sql)
    fc.commit()
    fc.close()
    for _ in pack_steps(plain, xz, fsync_dir):
        pass
    os.remove(plain)
    cache = os.path.join(adir, ".cache")
    for f in os.listdir(cache) if os.path.isdir(cache) else ():
        os.remove(os.path.join(cache, f))


def test_audit_catches_a_bet_moved_to_another_market_in_an_archive_file(db_path):
    make_db(db_path, days=8, per_day=300)
    archive_offline(Config(db=db_path), now_ms=NOW)
    assert audit(db_path) == []
    conn = open_readonly(db_path)
    name, checksum = conn.execute("SELECT name, checksum FROM archive_files").fetchone()
    conn.close()
    assert checksum.startswith("2:")            # the version that covers the market
    adir = archive_dir_of(None, db_path)
    rewrite_file(adir, name, "UPDATE bet_rows SET mkt = 2 WHERE id = (SELECT min(id) FROM bet_rows)")
    problems = audit(db_path)
    assert problems and problems[0].startswith(f"archive: {name} holds")
    assert "checksum" in problems[0]


def test_files_of_format_2_with_a_version_1_checksum_still_read(db_path):
    """Files made before format 3 (the SQLite file, lzma'd; the checksum
    without the market) are read and audited as they were."""
    from actors.archive._columns import unpack
    from actors.archive._files import Checksum, compress
    make_db(db_path, days=9, per_day=300)
    want = full_history(db_path, "u1")
    archive_offline(Config(db=db_path), now_ms=NOW)
    adir = archive_dir_of(None, db_path)
    conn = sqlite3.connect(db_path)
    for fid, name in conn.execute("SELECT id, name FROM archive_files").fetchall():
        xz = os.path.join(adir, name + ".xz")
        plain = os.path.join(adir, name)
        unpack(xz, plain)
        fc = sqlite3.connect(plain)
        ck = Checksum(1)
        for r in fc.execute(f"SELECT {ck.columns} FROM bets ORDER BY id"):
            ck.add(r)
        fc.execute("DELETE FROM meta WHERE key = 'format'")
        fc.execute("INSERT INTO meta VALUES ('format', 2)")
        fc.commit()
        fc.close()
        compress(plain, xz)
        os.remove(plain)
        with open(xz, "rb") as f:
            assert f.read(6) == b"\xfd7zXZ\x00"
        assert not ck.hexdigest().startswith("2:")
        conn.execute("UPDATE archive_files SET checksum = ? WHERE id = ?", (ck.hexdigest(), fid))
    conn.commit()
    conn.close()
    assert not os.path.exists(os.path.join(adir, ".cache"))      # nothing read them yet
    assert audit(db_path) == []
    assert full_history(db_path, "u1") == want


def test_commands_archive_history_and_audit(db_path, capsys):
    from web.cli import main
    make_db(db_path, days=9, per_day=400, now=int(time.time() * 1000))
    want = full_history(db_path, "u2")
    assert main(["archive", "--db", db_path]) == 0
    out = capsys.readouterr().out
    assert "'files': ['bets-" in out
    assert full_history(db_path, "u2") == want
    assert history_offline(db_path, "u2", limit=500) == want[:500]
    assert main(["audit", "--db", db_path]) == 0
    assert "audit ok" in capsys.readouterr().out
    assert main(["history", "u2", "--db", db_path, "--limit", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:2] == ["bet", "column"] and len(lines) == 4   # a header and 3 bets
    assert [int(line.split()[0]) for line in lines[1:]] == [b["bet"] for b in want[:3]]


def test_migrates_a_schema_1_database(db_path):
    conn = sqlite3.connect(db_path)
    conn.executescript("""
        PRAGMA auto_vacuum=INCREMENTAL;
        CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
        INSERT INTO meta VALUES ('schema_version', 1);
        CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                           balance INTEGER NOT NULL, created INTEGER NOT NULL);
        CREATE TABLE bets(id INTEGER PRIMARY KEY, user INTEGER NOT NULL, col INTEGER NOT NULL,
            lo INTEGER NOT NULL, stake INTEGER NOT NULL, mult INTEGER NOT NULL,
            min_mult INTEGER NOT NULL, ts INTEGER NOT NULL, nonce TEXT NOT NULL,
            sig BLOB NOT NULL, placed INTEGER NOT NULL, outcome INTEGER NOT NULL DEFAULT 0,
            payout INTEGER NOT NULL DEFAULT 0, settled INTEGER);
        CREATE INDEX bets_open ON bets(col, lo, user, stake, mult) WHERE outcome = 0;
        CREATE INDEX bets_user ON bets(user, id);
        CREATE TABLE ledger(id INTEGER PRIMARY KEY, user INTEGER NOT NULL, kind INTEGER NOT NULL,
            amount INTEGER NOT NULL, bet INTEGER, ts INTEGER NOT NULL);
        INSERT INTO users VALUES (1, 'alice', 1000 - 300 + 470 + 100, 0);
        INSERT INTO ledger VALUES (1, 1, 1, 1000, NULL, 0);
        INSERT INTO bets VALUES (1, 1, 10000, 500, 200, 235, 230, 4000, 'nonce-one', x'01', 4020,
                                 1, 470, 12000);
        INSERT INTO bets VALUES (2, 1, 10000, 600, 100, 150, 150, 4100, 'nonce-two', x'02', 4120,
                                 3, 100, 15000);
        INSERT INTO ledger VALUES (2, 1, 3, 470, 1, 12000);
        INSERT INTO ledger VALUES (3, 1, 4, 100, 2, 15000);
    """)
    conn.close()
    want = [(1, 1, 10000, 500, 200, 235, 230, 4000, "nonce-one", b"\x01", 4020, 1, 470, 12000),
            (2, 1, 10000, 600, 100, 150, 150, 4100, "nonce-two", b"\x02", 4120, 3, 100, 15000)]
    Store(db_path).close()
    conn = open_readonly(db_path)
    try:
        # every bet from before markets is on market 0 with a v1 payload (mkt 0)
        assert conn.execute("SELECT * FROM bets ORDER BY id").fetchall() == \
            [row + (0,) for row in want]
        assert conn.execute("SELECT type FROM sqlite_master WHERE name='bets'").fetchone() == \
            ("view",)
    finally:
        conn.close()
    assert audit(db_path) == []


# --- kill -9 mid-archive ------------------------------------------------------------------

CHILD = """
import sys
from actors.archive._runner import archive_offline
from actors._config import Config
print(archive_offline(Config(db=sys.argv[1]), now_ms=int(sys.argv[2])), flush=True)
"""


def _child(db):
    return subprocess.Popen([sys.executable, "-c", CHILD, db, str(NOW)], cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _check_exactly_once(db, adir, all_ids, final=False):
    hot = hot_ids(db)
    files = archive_ids(db, adir)
    seen = set(hot)
    for name, (state, ids) in files.items():
        assert ids is not None, f"{name} missing"
        dup = ids & seen
        # only a file still being deleted from the hot DB may share bets with it
        assert not dup or (state == COPIED and not final), (name, state, len(dup))
        seen |= ids
    assert seen == all_ids, "bets lost"
    problems = audit(db)
    assert problems == [], problems
    return files


@pytest.mark.timeout(240)
def test_kill_9_mid_archive_loses_and_duplicates_nothing(tmp_path):
    rng = random.Random(6)
    db = str(tmp_path / "hot.db")
    bets, _ = make_db(db, days=14, per_day=4000, users=30)
    want = full_history(db, "u3")
    adir = archive_dir_of(None, db)
    # how long a whole run takes here, on a copy, so kills land anywhere in it
    probe = str(tmp_path / "probe.db")
    src = sqlite3.connect(db)
    dst = sqlite3.connect(probe)
    src.backup(dst)
    src.close()
    dst.close()
    t = time.monotonic()
    p = _child(probe)
    assert p.wait(120) == 0, p.stderr.read()[-2000:]
    whole = time.monotonic() - t
    states = set()
    rounds = 8
    for i in range(rounds):
        p = _child(db)
        # stratified over the run, so kills land in every phase; each run
        # resumes where the last died, so later kills cut deeper in
        time.sleep(0.2 + whole * (i + rng.random()) / rounds)   # under test: when the kill lands
        p.send_signal(signal.SIGKILL)
        p.wait(30)
        files = _check_exactly_once(db, adir, set(bets))
        states |= {st for st, _ in files.values()}
        leftovers = [f for f in os.listdir(adir) if f.endswith((".building", ".tmp"))]
        states |= {"leftover"} if leftovers else set()
    p = _child(db)
    assert p.wait(120) == 0, p.stderr.read()[-2000:]
    files = _check_exactly_once(db, adir, set(bets), final=True)
    assert len(files) == 7 and all(st == COMPRESSED for st, _ in files.values())
    assert not [f for f in os.listdir(adir) if f.endswith((".building", ".tmp", ".db"))]
    assert full_history(db, "u3") == want
    assert len(states) >= 2, f"the kills all landed in one state: {states}"
    print(f"whole run {whole:.2f} s; states seen after kills: {sorted(map(str, states))}")


def test_a_crash_after_any_step_is_completed_by_the_next_run(tmp_path):
    """Deterministic twin of the kill test: stop the job after its k-th
    step (every write is committed, nothing after it happened), for every
    k, then let a normal run finish."""
    from actors.archive._job import archive_steps
    base = str(tmp_path / "base.db")
    bets, _ = make_db(base, days=9, per_day=300, users=5)
    want = full_history(base, "u1")
    k = 0
    while True:
        db = str(tmp_path / f"k{k}" / "hot.db")
        os.makedirs(os.path.dirname(db))
        src, dst = sqlite3.connect(base), sqlite3.connect(db)
        src.backup(dst)
        src.close()
        dst.close()
        adir = archive_dir_of(None, db)
        os.makedirs(adir)
        store = Store(db)
        gen = archive_steps(db, adir, NOW, 7)
        result, finished = None, False
        for _ in range(k):
            try:
                req = gen.send(result)
            except StopIteration:
                finished = True
                break
            result = None
            if req[0] == "write":
                store.write_batch(deletes=req[1], now=NOW)
                result = True
        store.close()
        gen.close()
        _check_exactly_once(db, adir, set(bets))
        report = archive_offline(Config(db=db), now_ms=NOW)
        assert report["errors"] == []
        files = _check_exactly_once(db, adir, set(bets), final=True)
        assert len(files) == 2 and all(st == COMPRESSED for st, _ in files.values())
        assert full_history(db, "u1") == want
        if finished:
            break
        k += 1
    assert k > 10
    print(f"crashed after each of {k} steps")


# --- inside the server ------------------------------------------------------------------

def test_server_archiver_deletes_through_the_writer_while_taps_flow(tmp_path):
    db = str(tmp_path / "live.db")
    bets, _ = make_db(db, days=9, per_day=1500, now=int(time.time() * 1000))
    want = full_history(db, "u4")
    cfg = Config(db=db, column_ms=1000, lock_ms=300, horizon_ms=3000, tick_interval_ms=100,
                 max_open_bets=10 ** 6, cell_liability_cap=10 ** 15, min_free_disk=0,
                 archive_every_s=0)
    system = ActorSystem()
    try:
        market = start_market(system, cfg, feed=SimFeed(seed=3, interval_ms=100))
        alice = market.create_user("alice", 10 ** 9)
        assert market.wait_ready(20)
        acks = []
        job = gevent.spawn(market.archive_now, 120)
        while not job.ready():
            cell = market.pick_cell()
            if cell:
                acks.append(market.tap(alice, cell[0], cell[1], 100))
            gevent.sleep(0.005)     # pacing the taps beside the job, not synchronisation
        report = job.get()
        assert report["errors"] == [] and len(report["files"]) == 2
        oks = [a.get(10) for a in acks]
        assert len(oks) > 10 and all(a.reason in (None, "column_closed") for a in oks)
        assert market.history(market.create_user("u4", 0), 500)[-1]["bet"] >= want[-1]["bet"]
    finally:
        system.stop()
    # make_db leaves the last hour's bets open; when the test runs within an hour
    # after midnight UTC some of them belong to windows already past, and the live
    # Resolver rightly voids them (no price record for those windows). Every other
    # bet must come back from hot DB and archive exactly as it was.
    got = full_history(db, "u4")
    assert [b["bet"] for b in got] == [b["bet"] for b in want]
    # the server named the database's markets (v1.1): every old bet is the default's
    assert {b.pop("market_id") for b in got} == {"BTC-USD/1s"}
    for old, new in zip(want, got):
        if old["outcome"] == "open" and new["outcome"] == "void":
            assert new["payout"] == old["stake"]
            new = dict(new, outcome="open", payout=0)
        assert new == old
    assert audit(db) == []
    acked = {a.bet for a in oks if a.reason is None}
    assert acked <= hot_ids(db)
