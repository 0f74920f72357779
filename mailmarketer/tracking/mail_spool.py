"""The email hits' spool: where `/t/c/` and `/t/o/` put a hit before they answer, so the
answer waits on one append to a file (shared with other requests' appends, one fsync for many),
never on the database. The worker's `ingest_mail_one` (mail_ingest.py) stores them in batches.

By default a hit is answered once its line is written to the kernel and synced within 50 ms
after; `MM_TRACKING_SYNC_BEFORE_ANSWER=true` makes each answer wait for its line's sync.

The spool itself (group commit, file hand-over, the reader's side) is lib/group_spool.py,
shared with the website hits (`web-` files) and the sign-up forms (`signup-` files); the email
hits' files are `mail-<ns>-<pid>.open` / `.jsonl`.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from mailmarketer.lib import group_spool
from mailmarketer.lib.group_spool import read_records, spool_dir

PREFIX = "mail-"

__all__ = ["PREFIX", "GroupSpool", "append", "read_records", "ready_files", "spool", "spool_dir"]


class GroupSpool(group_spool.GroupSpool):
    """The email hits' spool by default (`web_ingest.spool` passes its own prefix)."""

    def __init__(self, prefix: str = PREFIX):
        super().__init__(prefix, sync_before_answer)


def sync_before_answer() -> bool:
    """The tracking edge's choice (settings.TRACKING_SYNC_BEFORE_ANSWER), read per hit."""
    return settings.TRACKING_SYNC_BEFORE_ANSWER


spool = GroupSpool()


def append(record: dict) -> None:
    spool.append(record)


def ready_files(prefix: str = PREFIX) -> list[Path]:
    return group_spool.ready_files(prefix)
