"""The Writer's messages, one type each (the only SQLite writer takes
nothing else). Asks are answered as noted; tells are written all the same.

    writer.tell(PlaceBets([(bet, reply), ...]))       # each reply gets an Ack
    writer.ask(EnsureUser("guest:abc", 1000))        # -> user id
"""
from typing import NamedTuple

__all__ = ["PlaceBets", "Settle", "Credit", "EnsureUser", "SaveTicks", "SaveSession",
           "Maintenance", "ArchiveStep", "PurgeGuests", "TopUp", "TopUpResult", "WRITER_MESSAGES"]


class PlaceBets(NamedTuple):
    """From a Column: ``[(Bet, reply), ...]``, stakes already reserved in the
    ledger. Each reply (a Future, or anything with ``set``/``fail``) gets an
    ``Ack`` after the commit's fsync, or a reject with its reason; a reply
    with a ``sink`` is acked through it instead, with the others of its
    sink in that commit: ``sink([(reply, bet_id, mult, balance), ...])``."""
    bets: list


class Settle(NamedTuple):
    """From the Resolver (ask): ``[Settlement, ...]``. Each applies only if
    the bet is still open; the answer lists ``(Settlement, balance)`` for
    those that applied."""
    settlements: list


class Credit(NamedTuple):
    """Play money (ask -> the new balance)."""
    user: int
    amount: int


class EnsureUser(NamedTuple):
    """The user's id, created with a first credit if new (ask -> id). With
    ``new``, a taken name fails the ask with ``UserExists`` (a guest never
    signs into an account whose name it happened to draw)."""
    name: str
    credit: int = 0
    new: bool = False


class PurgeGuests(NamedTuple):
    """Delete guests created before ``created_before`` (ms) that never bet
    and hold no session (ask -> their user ids, forgotten by the ledger)."""
    created_before: int


class TopUp(NamedTuple):
    """A demo top-up back to ``to_balance`` for a user under ``below``, at
    most one per ``every_ms`` (ask -> ``TopUpResult``). The market decides,
    and the limit is in the database: every gateway process agrees on it."""
    user: int
    to_balance: int
    below: int
    every_ms: int


class TopUpResult(NamedTuple):
    """``reason`` is None (credited), ``balance_not_low`` or ``rate_limited``
    (``retry_ms`` until the next is allowed)."""
    reason: str | None
    credited: int
    balance: int
    retry_ms: int = 0


class SaveTicks(NamedTuple):
    """``[(ts, price), ...]`` from the Watchdog, kept for settlement."""
    ticks: list


class SaveSession(NamedTuple):
    """A ``sessions`` row ``(token_hash, user, key, expires)`` (ask -> True)."""
    row: tuple


class Maintenance(NamedTuple):
    """One maintenance statement in a transaction of its own (ask -> True)."""
    sql: str
    params: tuple = ()


class ArchiveStep(NamedTuple):
    """The archiver's chunked deletes and ``incremental_vacuum`` steps
    ``[(sql, params), ...]`` (ask -> True). They ride in the next batch's
    transaction: a chunk costs the taps beside it a millisecond or two of
    SQLite work, where a transaction of its own would cost them an fsync."""
    statements: list


WRITER_MESSAGES = (PlaceBets, Settle, Credit, EnsureUser, SaveTicks, SaveSession, Maintenance,
                   ArchiveStep, PurgeGuests, TopUp)
