"""Format 3 archive files (the bet rows by column): what goes in comes out
exactly, whatever the values, and the file stays a valid xz file."""
import lzma
import os
import random

import pysqlite3.dbapi2 as sqlite3
import pytest

from actors.archive._columns import GROUP_ROWS, MAGIC, Unsupported, pack_steps, unpack
from actors.archive._files import create_file, fsync_dir, to_stored, INSERT_LOGICAL


def _day_file(path, rows):
    conn = create_file(path)
    conn.executemany(INSERT_LOGICAL.replace("sig)", "sig, mkt)").replace("?)", "?,?)"), rows)
    conn.execute("CREATE TABLE ticks(ts INTEGER PRIMARY KEY, price INTEGER NOT NULL, src TEXT)"
                 " WITHOUT ROWID")
    conn.executemany("INSERT INTO ticks VALUES (?,?,?)",
                     [(1000 * i, 9_500_000 + i, None if i % 2 else "a,b") for i in range(300)])
    conn.execute("INSERT INTO meta VALUES ('format', 3)")
    conn.execute("COMMIT")
    conn.close()


def _rows(n, rng, start_id=1):
    out = []
    bid = start_id
    for i in range(n):
        bid += rng.choice((1, 1, 1, 2, 7))
        col = 1_700_000_000_000 + i * 5 // 3 * 1000
        nonce = "".join(rng.choices("ABCDEFGHIJabcdefgh0123456789_-", k=rng.choice((16, 11, 16))))
        logical = (bid, rng.randint(1, 5000), col, 9_500_000 + 1000 * rng.randint(-50, 50),
                   rng.choice((100, 250)), 235, 230, col - rng.randint(3000, 60000), nonce,
                   rng.randbytes(rng.choice((64, 64, 70))), col - 50000, rng.choice((1, 2, 3)),
                   0, col + 5300)
        stored = list(to_stored(logical))
        out.append(tuple(stored) + (rng.choice((0, 0, 3)),))
    return out


def _all(path, sql="SELECT * FROM bet_rows ORDER BY id"):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _pack(plain, xz):
    for _ in pack_steps(plain, xz, fsync_dir):
        pass


def test_rows_and_other_tables_come_back_exactly(tmp_path):
    rng = random.Random(3)
    rows = _rows(GROUP_ROWS + 1234, rng)           # two groups, the second partial
    # extremes: a payout adjustment at int64's ends, a negative offset
    rows[5] = rows[5][:11] + (-(1 << 63),) + rows[5][12:]
    rows[6] = rows[6][:11] + ((1 << 63) - 1,) + rows[6][12:]
    rows[7] = rows[7][:8] + (-40,) + rows[7][9:]
    plain, xz, back = (str(tmp_path / f) for f in ("d.db", "d.db.xz", "back.db"))
    _day_file(plain, rows)
    _pack(plain, xz)
    payload = lzma.decompress(open(xz, "rb").read())        # a valid xz file
    assert payload.startswith(MAGIC)
    unpack(xz, back)
    assert _all(back) == _all(plain)
    assert [type(r[0]) for r in _all(back, "SELECT nonce FROM bet_rows")] == \
        [type(r[0]) for r in _all(plain, "SELECT nonce FROM bet_rows")]      # text stays text
    assert _all(back, "SELECT * FROM ticks") == _all(plain, "SELECT * FROM ticks")
    assert _all(back, "SELECT * FROM meta") == [("format", 3)]
    # the bets view rides along
    assert _all(back, "SELECT count(*) FROM bets") == [(len(rows),)]
    # far smaller than the plain file: the signatures and nonces dominate
    assert os.path.getsize(xz) < os.path.getsize(plain) * 0.8


def test_ids_far_apart_and_an_empty_file(tmp_path):
    rng = random.Random(4)
    rows = _rows(10, rng)
    rows[3] = ((1 << 62),) + rows[3][1:]         # neighbours' differences beyond int32
    rows[4] = ((1 << 62) + 5,) + rows[4][1:]
    for i, r in enumerate(rows):
        rows[i] = r
    rows.sort()
    plain, xz, back = (str(tmp_path / f) for f in ("d.db", "d.db.xz", "back.db"))
    _day_file(plain, rows)
    _pack(plain, xz)
    unpack(xz, back)
    assert _all(back) == _all(plain)
    empty, exz, eback = (str(tmp_path / f) for f in ("e.db", "e.db.xz", "eback.db"))
    _day_file(empty, [])
    _pack(empty, exz)
    unpack(exz, eback)
    assert _all(eback) == [] and len(_all(eback, "SELECT * FROM ticks")) == 300


def test_a_value_it_cannot_hold_is_refused_and_nothing_is_left(tmp_path):
    rng = random.Random(5)
    rows = _rows(50, rng)
    rows[9] = rows[9][:4] + (2.5,) + rows[9][5:]          # a REAL stake: not an integer
    plain, xz = str(tmp_path / "d.db"), str(tmp_path / "d.db.xz")
    _day_file(plain, rows)
    with pytest.raises(Unsupported):
        _pack(plain, xz)
    assert sorted(os.listdir(tmp_path)) == ["d.db"]


def test_a_damaged_file_does_not_read_back(tmp_path):
    rng = random.Random(6)
    plain, xz, back = (str(tmp_path / f) for f in ("d.db", "d.db.xz", "back.db"))
    _day_file(plain, _rows(3000, rng))
    _pack(plain, xz)
    data = bytearray(open(xz, "rb").read())
    data[len(data) // 2] ^= 0x40                 # one bit, in the stored signatures
    open(xz, "wb").write(bytes(data))
    with pytest.raises(lzma.LZMAError):
        unpack(xz, back)
