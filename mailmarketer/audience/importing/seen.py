"""The addresses met so far in one import file, each with the line of its first row, so a later
row with the same address is reported as "duplicate in file (of line N)".

Why on disk: a Python dict of a million addresses (or of their hashes) to lines costs 100-150 MB
and grows with the file, and memory must not. So the index is a private SQLite file next to the
import (whatever the main database is): a B-tree of (64-bit hash of the address, first line)
with a bounded page cache, about 20 bytes a row on disk and a fixed 16 MB at most in memory.
Each chunk costs one statement: a multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING, whose
missing rows are the duplicates (measured: about 4x faster than a lookup then an insert).

The hash is Python's own string hash (64-bit SipHash, computed once per string anyway): two
different addresses share one with odds of about 1 in 10^7 for a file of a million rows, and
such a row would be reported as a duplicate, never silently dropped. Python salts that hash per
process, so the index is scratch: rebuilt from the file when a job resumes, deleted at the end.
"""

from __future__ import annotations

import sqlite3
from functools import cache
from pathlib import Path

from mailmarketer.lib.datafiles import private_file

CACHE_KIB = 16 * 1024
BATCH = 5000  # rows per statement: 10,000 bound parameters (SQLite allows 32,766)


@cache
def _insert(rows: int) -> str:
    values = ",".join(["(?,?)"] * rows)
    return f"INSERT INTO seen (k, line) VALUES {values} ON CONFLICT DO NOTHING RETURNING k"  # noqa: S608 - placeholders only


class SeenAddresses:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.unlink(missing_ok=True)
        private_file(self.path)  # the addresses of the file: 0600 before SQLite writes any
        # Made here, used by the job's reading thread: one thread at a time.
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        # Scratch data, rebuilt after a crash: no journal, no fsync, nobody else reading.
        for pragma in (
            "journal_mode=OFF",
            "synchronous=OFF",
            "locking_mode=EXCLUSIVE",
            f"cache_size=-{CACHE_KIB}",
        ):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.execute("CREATE TABLE seen (k INTEGER PRIMARY KEY, line INTEGER NOT NULL)")

    def duplicates(self, entries: list[tuple[str, int]]) -> dict[int, int]:
        """Adds (address, line) pairs, in any order; returns {line: line first met} for each
        entry whose address was met before, in an earlier call or earlier in this one."""
        pairs = sorted((hash(email), line) for email, line in entries)
        inserted = set()
        for start in range(0, len(pairs), BATCH):
            batch = pairs[start : start + BATCH]
            params = [value for pair in batch for value in pair]
            inserted.update(k for (k,) in self.db.execute(_insert(len(batch)), params))
        dup_lines, dup_keys = [], []
        previous = None
        for key, line in pairs:
            # Sorted by (key, line): the first of a key is the one inserted, if any was.
            if key == previous or key not in inserted:
                dup_lines.append((key, line))
                dup_keys.append(key)
            previous = key
        if not dup_lines:
            return {}
        first = {}
        keys = list(set(dup_keys))
        for start in range(0, len(keys), BATCH):
            batch = keys[start : start + BATCH]
            marks = ",".join("?" * len(batch))
            sql = f"SELECT k, line FROM seen WHERE k IN ({marks})"  # noqa: S608 - marks only
            first.update(self.db.execute(sql, batch))
        return {line: first[key] for key, line in dup_lines}

    def close(self) -> None:
        self.db.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> SeenAddresses:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
