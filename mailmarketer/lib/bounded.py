"""Running one function in a child process under a hard limit of time and memory.

    result = run_bounded(fn, args, seconds=2.0, memory=256 * 2**20, preload=("some.module",))

For work that a request must not be held by however it behaves (a campaign template is code
written by a user): the child is killed when the time is up, and the request gets `Overrun`.

Why a process: the web server runs requests in threads (gunicorn's gthread workers); a thread
cannot be stopped from outside, SIGALRM reaches the main thread only, and RLIMIT_CPU or a memory
limit would apply to the whole server. A child process can be killed and its memory is returned
when it ends.

The children are forked from multiprocessing's fork server: a small single-threaded process
started on first use with `preload` imported, so a call costs a fork and a pipe (milliseconds)
rather than an interpreter start, and the threaded server itself is never forked (a fork copies
locks other threads may hold). `fn`, its arguments and its result travel pickled: module-level
functions and plain data only. An exception raised in the child is raised again here when it
can be pickled; otherwise `Overrun` says what it was.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable

try:
    import resource
except ImportError:  # not on this platform: the time limit still holds
    resource = None


class Overrun(Exception):
    """The child took too long, or died (a memory limit, a crash) before answering."""


_lock = threading.Lock()
_preloaded: set[str] = set()


def _context(preload: Iterable[str]):
    ctx = multiprocessing.get_context("forkserver")
    # "__main__": the fork server runs the program's main script once (under the name
    # __mp_main__, so its `if __name__ == "__main__"` part does not run), instead of every
    # child running it again before it starts.
    wanted = {"__main__", *preload}
    with _lock:
        if not wanted <= _preloaded:
            # Takes effect when the fork server starts, which is on the first call.
            _preloaded.update(wanted)
            ctx.set_forkserver_preload(sorted(_preloaded))
    return ctx


def _limit_memory(extra: int) -> None:
    if resource is None:
        return
    with open("/proc/self/statm") as statm:  # virtual size now, in pages
        pages = int(statm.read().split()[0])
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = pages * os.sysconf("SC_PAGE_SIZE") + extra
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _child(conn, memory: int | None, fn: Callable, args: tuple) -> None:
    try:
        if memory:
            _limit_memory(memory)
        outcome = ("ok", fn(*args))
    except BaseException as exc:  # everything goes back to the parent
        outcome = ("error", exc)
    try:
        conn.send(outcome)
    except Exception as exc:  # an exception or result that cannot be pickled
        conn.send(("error", Overrun(f"{type(exc).__name__}: {exc}")))
    conn.close()


def run_bounded(
    fn: Callable,
    args: tuple = (),
    *,
    seconds: float,
    memory: int | None = None,
    preload: Iterable[str] = (),
):
    """fn(*args) in a child process: its result, or its exception raised again here. Raises
    Overrun when it runs longer than `seconds` (the child is killed) or dies, for instance on
    allocating more than `memory` bytes beyond what it starts with."""
    ctx = _context(preload)
    reader, writer = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(writer, memory, fn, args), daemon=True)
    try:
        child.start()
        writer.close()
        if not reader.poll(seconds):
            raise Overrun(f"it took longer than {seconds:g} s")
        try:
            status, value = reader.recv()
        except EOFError:
            raise Overrun("the process doing it ended without an answer") from None
    finally:
        if child.is_alive():
            child.kill()
        if child.pid is not None:
            child.join()
        reader.close()
    if status == "error":
        raise value
    return value
