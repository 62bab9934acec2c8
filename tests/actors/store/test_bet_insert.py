"""A batch's bets go in as multi-row INSERTs (its size in binary: 128, 64,
..., 1 rows a statement) and the stakes leave the balances in one UPDATE
summed from the rows just written: the rows and balances must be exactly
what one INSERT per bet and one UPDATE per user wrote (actors/store/_store.py)."""
import pytest

from actors._model import Bet
from actors.store import Store, open_readonly

COL = 1_800_000_000_000


def _bets(users, n, offset=0):
    out = []
    for i in range(offset, offset + n):
        user = users[i % len(users)]
        sig = bytes([(i * 7 + k) % 256 for k in range(64)])
        out.append(Bet(user, COL + (i % 3) * 5000, 9_500_000 + (i % 9) * 1000, 100 + i % 5,
                       250 + i % 4, 101 + i % 2, COL - 3000 - i, f"nonce-{i:05d}", sig,
                       COL - 2000 - i, 2 * (i % 2) + (i % 3 == 0)))
    return out


@pytest.mark.parametrize("sizes", [(1,), (2, 3), (15,), (128,), (129, 255), (300, 1, 7)])
def test_chunked_insert_writes_every_field_and_every_balance(tmp_path, sizes):
    db = str(tmp_path / "t.db")
    store = Store(db)
    users = [store.ensure_user(f"u{k}", credit=1_000_000, now=0) for k in range(7)]
    written, offset = [], 0
    for n in sizes:
        bets = _bets(users, n, offset)
        ids, _ = store.write_batch(bets, now=COL)
        assert ids == list(range(offset + 1, offset + n + 1))
        written += bets
        offset += n
    store.close()
    conn = open_readonly(db)
    try:
        got = conn.execute("SELECT id, user, col, lo, stake, mult, min_mult, ts, nonce, sig,"
                           " placed, mkt, outcome, settled FROM bets ORDER BY id").fetchall()
        balances = dict(conn.execute("SELECT id, balance FROM users").fetchall())
    finally:
        conn.close()
    assert len(got) == len(written)
    for (bid, *row), (i, b) in zip(got, enumerate(written, 1)):
        assert bid == i
        assert row == [b.user, b.col, b.lo, b.stake, b.mult, b.min_mult, b.ts, b.nonce, b.sig,
                       b.placed, b.mkt, 0, None]
    for u in users:
        assert balances[u] == 1_000_000 - sum(b.stake for b in written if b.user == u)
