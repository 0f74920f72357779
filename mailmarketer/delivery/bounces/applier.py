"""The bouncer's applier: a child process of `mailmarketer bouncer` that applies what the
receiver queued (apply.apply_pending_one, batches of up to 200) until it is told to stop or its
parent is gone.

Why a process and not a thread of the bouncer: applying is CPU work in Python (the MIME parser,
Django building the bulk statements), and a thread doing it holds the GIL that the receiver's
event loop needs for every SMTP command: measured under load, acceptance fell from ~600 to ~130
DSNs/s whenever a batch ran beside the intake. As a process it uses the other core and the
receiver answers at its own pace.

    python -m mailmarketer.delivery.bounces.applier --parent <pid>

It exits when its parent is gone (checked between batches, at most IDLE_S apart), so a bouncer
killed with kill -9 leaves no applier behind; SIGTERM lets the batch in hand finish. What it has
not applied stays queued for the next bouncer or a worker (the same function is a worker duty).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import time

logger = logging.getLogger(__name__)

IDLE_S = 0.1  # how long an empty queue is left before looking again
# Batches run while mail streams in, beside the intake (the applier has the other core): each
# holds SQLite's write lock for its database work only (the MIME parsing is done before it
# takes the lock), so the receiver's group commit, and the sessions waiting for their 250, wait
# for at most one batch's statements (a few hundred milliseconds under load). Waiting for a
# pause in the intake instead left one core idle while the receiver worked (end to end 0.24x
# of the discarding server; see benchmarks/README.md).
BATCH = 200  # measured in-process: ~12% less CPU per report than batches of 100
# A batch costs a fixed number of statements and their Python whatever its size, so an applier
# that keeps up with the intake would apply a few reports at a time at several times the cost
# per report: after a batch smaller than BATCH it lets the queue fill for GATHER_S first (at
# 500 DSNs/s, ~50 reports), which bounds the delay it adds to a report to about that.
GATHER_S = 0.1


def run(parent: int, *, idle_s: float = IDLE_S) -> None:
    from django.db import DatabaseError, connection

    from .apply import apply_pending

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    while not stopping and os.getppid() == parent:
        try:
            found = apply_pending(BATCH)
        except DatabaseError:
            logger.exception("applying received reports failed; trying again in a second")
            connection.close()
            time.sleep(1)
            continue
        if not found:
            time.sleep(idle_s)
        elif found < BATCH:
            time.sleep(min(idle_s, GATHER_S))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mailmarketer.delivery.bounces.applier")
    parser.add_argument("--parent", type=int, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailmarketer.settings")
    import django

    django.setup()
    run(args.parent)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
