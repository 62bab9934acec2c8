"""``Store.last_commit``: each COMMIT's own start and end (the WAL append
and fsync), kept apart from the batch's statements, for tracing what a
tap's wait is made of (perf/bench_storage.py --trace)."""
import time

from actors._model import Bet
from actors.store._store import Store


def test_each_write_batch_records_its_commit_after_its_statements(tmp_path):
    store = Store(str(tmp_path / "t.db"))
    try:
        assert store.last_commit is None
        uid = store.ensure_user("alice", credit=10 ** 6)
        t = time.perf_counter()
        store.write_batch(bets=[Bet(uid, 60_000, 9_500_000, 100, 150, 150, 1, "n" * 16,
                                    bytes(64), 2)], now=3)
        a, b = store.last_commit
        assert t < a <= b <= time.perf_counter()
        store.write_batch(credits=[(uid, 5)], now=4)
        assert store.last_commit[0] >= b        # the next batch's, not the first's again
    finally:
        store.close()
