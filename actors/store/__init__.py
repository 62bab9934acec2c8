"""Storage: the SQLite schema and its migrations (``_schema``), the Store the Writer commits through, the
bet row format (shared with the archive files), history and receipts, the
audit, and the offline commands (credit, history).

    store = Store("/tmp/m.db")          # creates the schema on first open
    conn = open_readonly("/tmp/m.db")
    history(conn, user_id=1, limit=20)  # newest first, hot DB and archive

The bet row format and the Store are imported first: the archive package
(which ``_receipt`` and ``_audit`` read through) needs them while it loads.
"""
from ._betrows import (BET_ROWS, BETS_VIEW, LOGICAL_COLUMNS, NO_SETTLED, derived_payout,
                       nonce_text, pack_nonce, view_arm)
from ._store import (INSERT_KEY, KIND_CREDIT, KIND_PAYOUT, KIND_REFUND, SCHEMA_VERSION, Store,
                     UserExists, is_disk_full, open_readonly)
from ._spans import (DROP_SPAN, SPAN_MS, SpanChanged, bet_tables, ledger_for, open_index,
                     quarter_of, span_days, span_ledger, span_of, span_table, table_of, tables_of)
from ._idle import FAVOUR_NICE, FAVOUR_RT_PRIORITY, favour_thread, idle_priority, lower_priority, nice_thread
from ._pricerecord import (DEFAULT_ASSET, PAD_MS, RECORD_SCHEMA, copy_record_steps,
                           prune_record_steps, record_schema, record_tables, window_of)
from ._receipt import (HISTORY_COLUMNS, MAX_HISTORY_LIMIT, history, market_names,  # noqa: E402
                       next_cursor, receipt)
from ._audit import CHECKS, audit, bet_sources  # noqa: E402
from ._offline import credit_offline, history_offline  # noqa: E402
# operations (issue 13): one writer per database, backup, the Litestream replica
from ._dblock import DatabaseLocked, acquire_lock, lock_holder, release_lock  # noqa: E402
from ._backup import backup  # noqa: E402
from ._replica import (Replicator, ReplicaError, litestream_config, litestream_path,  # noqa: E402
                       restore)

__all__ = [
    "Store", "UserExists", "open_readonly", "is_disk_full", "SCHEMA_VERSION",
    "KIND_CREDIT", "KIND_PAYOUT", "KIND_REFUND",
    "BET_ROWS", "BETS_VIEW", "LOGICAL_COLUMNS", "NO_SETTLED", "derived_payout", "pack_nonce",
    "nonce_text", "view_arm",
    "history", "next_cursor", "receipt", "market_names", "HISTORY_COLUMNS", "MAX_HISTORY_LIMIT",
    "audit", "bet_sources", "CHECKS", "credit_offline", "history_offline",
    "INSERT_KEY", "RECORD_SCHEMA", "PAD_MS", "copy_record_steps", "prune_record_steps",
    "window_of", "record_tables", "record_schema", "DEFAULT_ASSET",
    "DatabaseLocked", "acquire_lock", "release_lock", "lock_holder", "backup", "Replicator",
    "ReplicaError", "litestream_config", "litestream_path", "restore", "idle_priority",
    "lower_priority", "nice_thread", "favour_thread", "FAVOUR_NICE",
    "FAVOUR_RT_PRIORITY",
    "DROP_SPAN", "SPAN_MS", "SpanChanged", "bet_tables", "ledger_for", "open_index", "span_days",
    "span_ledger", "span_of", "span_table", "table_of", "quarter_of", "tables_of",
]
