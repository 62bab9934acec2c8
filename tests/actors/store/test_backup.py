"""``backup``: a copy larger than the flush interval (the copy's dirty pages
are written out as it goes) is whole and identical to its source."""
import os

import pysqlite3.dbapi2 as sqlite3

from actors.store import _backup
from actors.store._backup import backup
from actors.store._store import Store


def test_a_backup_flushed_in_steps_is_identical(tmp_path, monkeypatch):
    db = str(tmp_path / "src.db")
    store = Store(db, synchronous="OFF")
    uid = store.ensure_user("alice", credit=10 ** 6)
    store.conn.execute("BEGIN")
    store.conn.executemany("INSERT INTO ledger(user, kind, amount, bet, ts) VALUES (?,1,0,NULL,?)",
                           [(uid, i) for i in range(60_000)])
    store.conn.execute("COMMIT")
    store.close()
    synced = []
    real = os.fdatasync
    monkeypatch.setattr(_backup, "SYNC_BYTES", 16 * 4096)
    monkeypatch.setattr(_backup.os, "fdatasync", lambda fd: (synced.append(fd), real(fd)))
    out = str(tmp_path / "copy.db")
    r = backup(db, out, pages=4, sleep_s=0)
    assert r["pages"] * 4096 > 8 * _backup.SYNC_BYTES and len(synced) >= 4
    a, b = sqlite3.connect(db), sqlite3.connect(out)
    try:
        assert b.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        q = "SELECT * FROM ledger ORDER BY id"
        assert a.execute(q).fetchall() == b.execute(q).fetchall()
    finally:
        a.close()
        b.close()
    assert not any(f.endswith(".partial") for f in os.listdir(tmp_path))


def test_a_backup_rests_between_its_steps(tmp_path):
    """``sleep_s`` after every step but the last (Python's own ``sleep=``
    applies only to a locked source: never in WAL mode)."""
    db = str(tmp_path / "src.db")
    store = Store(db, synchronous="OFF")
    uid = store.ensure_user("alice", credit=10 ** 6)
    store.conn.executemany("INSERT INTO ledger(user, kind, amount, bet, ts) VALUES (?,1,0,NULL,?)",
                           [(uid, i) for i in range(20_000)])
    store.close()
    r = backup(db, str(tmp_path / "copy.db"), pages=2, sleep_s=0.002)
    steps = -(-r["pages"] // 2)
    assert steps > 20 and r["rested_s"] >= (steps - 1) * 0.002
    assert r["seconds"] >= r["rested_s"]
