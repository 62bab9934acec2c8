"""The market: price watchdog, columns, odds, ledger, group-commit writer,
resolver and audit, built from engine actors.

    from engine import ActorSystem
    from actors import Config, start_market
    market = start_market(ActorSystem(), Config(db="/tmp/m.db"))
"""
from ._config import Config, parse_size
from ._context import MarketContext, Sinks, WriterStats
from .feeds import BinanceFeed, CoinbaseFeed, ReplayFeed, SimFeed, Tick, make_feed
# store before anything that loads the archive (it reads the bet row format while loading)
from .store import Store, UserExists, audit, credit_offline, history_offline, open_readonly
from ._ledger import Ledger
from ._expiring import ExpiringKeys
from ._model import (LOST, OPEN, OPERATOR_SIG, OUTCOME_NAMES, REASONS, VOID, WON, Ack, Bet,
                     Settlement, Tap, TapOrder, payout_for)
from ._writes import (ArchiveStep, Credit, EnsureUser, Maintenance, PlaceBets, SaveSession,
                      SaveTicks, Settle, TopUp, TopUpResult)
from ._odds import (MULT_BUCKETS, Volatility, column_multipliers, mult_bucket, multiplier,
                    touch_probability)
from ._runtime import MarketHandle, start_market
from ._status import Grid, MarketStatus
from ._column import Column
from ._market import MarketMaker, open_columns, price_grid
from ._pricer import price_columns
from ._resolver import Resolver, path_of, touches
from ._watchdog import Health, Watchdog
from ._writer import Writer
from ._board import Board, BoardView

__all__ = [
    "Config", "parse_size", "start_market", "MarketHandle", "MarketContext", "Sinks",
    "WriterStats", "Tick", "SimFeed", "ReplayFeed", "CoinbaseFeed", "BinanceFeed", "make_feed",
    "Ledger", "ExpiringKeys", "Tap", "Bet", "Settlement", "Ack", "OPEN", "WON", "LOST", "VOID",
    "OUTCOME_NAMES", "OPERATOR_SIG", "REASONS", "payout_for", "touch_probability", "multiplier",
    "Volatility", "column_multipliers", "MULT_BUCKETS", "mult_bucket", "Grid", "MarketStatus",
    "Store", "UserExists", "open_readonly", "Column", "MarketMaker", "price_grid", "open_columns",
    "price_columns", "Resolver",
    "path_of", "touches", "Watchdog", "Health", "Writer", "shell_namespace",
    "audit", "credit_offline", "history_offline",
    "TapOrder", "PlaceBets", "Settle", "Credit", "EnsureUser", "SaveTicks", "SaveSession",
    "Maintenance", "ArchiveStep", "TopUp", "TopUpResult", "Board", "BoardView",
]


def shell_namespace(system, cfg):
    """Names preloaded in ``tapgrid shell``."""
    import functools
    return {"start_market": functools.partial(start_market, system), "Config": Config,
            "Tap": Tap, "audit": audit}


# the price record and its verification (issue 11)
from ._verify import VerifyError, verify  # noqa: E402

__all__ += ["verify", "VerifyError"]

# retention (issue 6)
from .archive import Archiver, archive_offline  # noqa: E402

__all__ += ["Archiver", "archive_offline"]

# operations (issue 13)
from .store import (DatabaseLocked, Replicator, ReplicaError, backup,  # noqa: E402
                    litestream_config, litestream_path, restore)

__all__ += ["DatabaseLocked", "backup", "Replicator", "ReplicaError", "litestream_config",
            "litestream_path", "restore"]
