"""Balances in memory, for speed; the database stays the record.

Columns reserve a stake the moment they accept a tap (so two taps cannot
spend the same money), the Writer releases it if the commit fails, and
settlements credit payouts after they are durable. Rebuilt from the
database on start.

    >>> from actors._ledger import Ledger
    >>> led = Ledger()
    >>> led.add_user(1, 1000)
    >>> led.reserve(1, 300, (5000, 9_500_000), 600)
    >>> led.balance(1), led.open_bets(1)
    (700, 1)
    >>> led.settle(1, 600, (5000, 9_500_000), 600); led.balance(1)
    1300
"""
from ._model import cell_key, payout_for

__all__ = ["Ledger"]


class Ledger:
    def __init__(self):
        self._balance = {}
        self._open = {}
        self._liability = {}

    def load(self, users, open_bets):
        """``users``: {id: (name, balance)}; ``open_bets``: rows
        (id, user, col, lo, stake, mult[, mkt]) as ``Store.load_state`` gives."""
        self._balance = {uid: bal for uid, (_, bal) in users.items()}
        self._open = {}
        self._liability = {}
        for row in open_bets:
            user, col, lo, stake, mult = row[1:6]
            self._open[user] = self._open.get(user, 0) + 1
            cell = cell_key(col, lo, row[6] >> 1 if len(row) > 6 else 0)
            self._liability[cell] = self._liability.get(cell, 0) + payout_for(stake, mult)

    def add_user(self, uid, balance):
        self._balance.setdefault(uid, balance)

    def forget(self, uids):
        """Drop purged accounts (no bets, so no open bets or liability)."""
        for uid in uids:
            self._balance.pop(uid, None)
            self._open.pop(uid, None)

    def known(self, uid):
        return uid in self._balance

    def balance(self, uid):
        return self._balance.get(uid, 0)

    def open_bets(self, uid):
        return self._open.get(uid, 0)

    def liability(self, cell):
        return self._liability.get(cell, 0)

    def reserve(self, uid, stake, cell, exposure):
        self._balance[uid] = self._balance.get(uid, 0) - stake
        self._open[uid] = self._open.get(uid, 0) + 1
        self._liability[cell] = self._liability.get(cell, 0) + exposure

    def release(self, uid, stake, cell, exposure):
        """Undo a reservation whose bet was not written."""
        self._balance[uid] = self._balance.get(uid, 0) + stake
        self._close(uid, cell, exposure)

    def settle(self, uid, payout, cell, exposure):
        self._balance[uid] = self._balance.get(uid, 0) + payout
        self._close(uid, cell, exposure)

    def credit(self, uid, amount):
        self._balance[uid] = self._balance.get(uid, 0) + amount

    def _close(self, uid, cell, exposure):
        n = self._open.get(uid, 0) - 1
        if n > 0:
            self._open[uid] = n
        else:
            self._open.pop(uid, None)
        left = self._liability.get(cell, 0) - exposure
        if left > 0:
            self._liability[cell] = left
        else:
            self._liability.pop(cell, None)
