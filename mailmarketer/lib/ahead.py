"""Work ahead: run a generator in a background thread, a bounded number of items ahead of its
consumer.

For a loop whose two halves wait on different things: an import parses the next chunk of its
file (Python, holding the interpreter) while the database writes the current one (a socket or
SQLite's C code, not holding it). Run in turn, their times add up; here they overlap, and the
memory held is at most `depth` items plus the one being consumed.

    with ahead(parsed_chunks(), depth=1) as chunks:
        for chunk in chunks:
            write(chunk)

Whatever the generator raises is raised in the consumer, at the item where it happened. Leaving
the block early (an exception, a break) stops the generator at its next item and waits for its
thread, so nothing it holds (an open file, a connection) outlives the block. The generator must
not touch what only the consumer's thread may use, such as Django's database connection.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

_END = object()
_POLL_SECONDS = 0.1  # how soon a stopped producer notices, while waiting for room


class _Raised:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException):
        self.exc = exc


@contextmanager
def ahead(items: Iterable, *, depth: int = 1, name: str = "ahead") -> Iterator[Iterator]:
    if depth < 1:
        raise ValueError("depth must be at least 1")
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            put(_Raised(exc))
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None and stop.is_set():
                close()  # a generator stopped early runs its own clean-up here, in its thread
        put(_END)

    def consume() -> Iterator:
        while True:
            item = handoff.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        stop.set()
        thread.join()
