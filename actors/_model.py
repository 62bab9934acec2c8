"""The game's records, as small tuples: cheap to make thousands a second.

Money in minor units, prices in cents, times in Unix ms, multipliers in
hundredths (235 = 2.35x).

    >>> from actors._model import Bet, OPEN, payout_for
    >>> payout_for(stake=1000, mult=235)
    2350
"""
from typing import NamedTuple

__all__ = ["Tap", "TapOrder", "Bet", "Settlement", "Ack", "OPEN", "WON", "LOST", "VOID",
           "OUTCOME_NAMES", "payout_for", "REASONS"]

OPEN, WON, LOST, VOID = 0, 1, 2, 3
OUTCOME_NAMES = {OPEN: "open", WON: "won", LOST: "lost", VOID: "void"}

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


class Settlement(NamedTuple):
    bet: int
    user: int
    col: int
    lo: int
    stake: int
    mult: int
    outcome: int
    payout: int


class Ack(NamedTuple):
    """The Writer's answer to one tap: ``reason`` is None when it is durable."""
    reason: str | None
    bet: int = 0
    mult: int = 0
    balance: int = 0


def payout_for(stake, mult):
    """Stake times multiplier, rounded down to a whole minor unit."""
    return stake * mult // 100
