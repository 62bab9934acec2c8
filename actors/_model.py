"""The game's records, as small tuples: cheap to make thousands a second.

Money in minor units, prices in cents, times in Unix ms, multipliers in
hundredths (235 = 2.35x).

    >>> from actors._model import Bet, OPEN, payout_for
    >>> payout_for(stake=1000, mult=235)
    2350
"""
from typing import NamedTuple

__all__ = ["Tap", "TapOrder", "Bet", "Settlement", "Ack", "OPEN", "WON", "LOST", "VOID",
           "OUTCOME_NAMES", "payout_for", "REASONS", "cell_key", "OPERATOR_SIG"]

OPEN, WON, LOST, VOID = 0, 1, 2, 3
OUTCOME_NAMES = {OPEN: "open", WON: "won", LOST: "lost", VOID: "void"}

#: the signature of a bet the operator placed from the console: no player
#: signed it, and ``tapgrid verify`` says so instead of calling it forged
OPERATOR_SIG = bytes(64)

#: every reject reason of SPEC section 9
REASONS = ("bad_request", "bad_signature", "expired", "replay", "column_closed",
           "bad_cell", "odds_changed", "insufficient_balance", "limit",
           "rate_limited", "market_suspended", "overloaded", "disk_low")


class Tap(NamedTuple):
    """A verified tap, on its way to a Column."""
    user: int
    col: int
    lo: int
    stake: int
    min_mult: int
    ts: int
    nonce: str
    sig: bytes
    #: the payload's ``market_id`` (SPEC 9, v1.1); None: a v1 tap, for the default market
    market_id: str | None = None


class TapOrder(NamedTuple):
    """A verified tap told to its Column with where its answer goes:
    anything with ``set(Ack)`` and ``fail(exc)``. The gateway passes one
    small object per tap that formats the ack frame itself, so the hot path
    has no Future and no callback per tap."""
    tap: Tap
    reply: object


class Bet(NamedTuple):
    """An accepted tap, on its way to the Writer (id assigned there)."""
    user: int
    col: int
    lo: int
    stake: int
    mult: int
    min_mult: int
    ts: int
    nonce: str
    sig: bytes
    placed: int
    #: the market and how the payload named it: ``2 * number + keyed`` (store/_betrows)
    mkt: int = 0


class Settlement(NamedTuple):
    bet: int
    user: int
    col: int
    lo: int
    stake: int
    mult: int
    outcome: int
    payout: int
    market: int = 0              # the market's number (its cells' liability key)


class Ack(NamedTuple):
    """The Writer's answer to one tap: ``reason`` is None when it is durable."""
    reason: str | None
    bet: int = 0
    mult: int = 0
    balance: int = 0


def cell_key(col, lo, market=0):
    """The ledger's key of a cell: markets other than number 0 add their
    number (two markets can share a column time and a band)."""
    return (col, lo) if not market else (col, lo, market)


def payout_for(stake, mult):
    """Stake times multiplier, rounded down to a whole minor unit."""
    return stake * mult // 100
