"""The archive: settled bets older than the retention move from the hot DB
into day files (copy, delete, compress, ship), each step resumable.
``Archiver`` runs the job in the market; ``archive_offline`` is
``tapgrid archive``.

    archive_offline(Config(db="/tmp/m.db", hot_days=7))   # -> the report dict
"""
from ._files import (CACHE_FILES, COMPRESSED, COPIED, DELETED, INSERT_LOGICAL, REMOVED,
                     SHIPPED, STATE_NAMES, Checksum, archive_dir_of, compress, compress_steps,
                     create_file, fsync_dir, fsync_path, local_path, open_file, to_stored)
from ._job import DAY_MS, ArchiveError, archive_steps, new_report
from ._runner import Archiver, archive_offline

__all__ = [
    "Archiver", "archive_offline", "archive_steps", "new_report", "ArchiveError", "DAY_MS",
    "archive_dir_of", "open_file", "local_path", "create_file", "to_stored", "compress",
    "compress_steps", "fsync_dir", "fsync_path", "Checksum", "INSERT_LOGICAL", "CACHE_FILES",
    "COPIED", "DELETED", "COMPRESSED", "SHIPPED", "REMOVED", "STATE_NAMES",
]
