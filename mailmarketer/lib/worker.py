"""The worker loop: one process type for every kind of background work.

A *duty* is a function `<verb>_one() -> bool` that claims one unit of work, does it, and returns
whether it found any (healthchecks' sendalerts habit). Apps register theirs with
`register_duty` in their AppConfig.ready(); the worker calls each duty in turn, round after
round, and sleeps `settings.WORKER_IDLE_SLEEP` only after a round in which no duty found work, so
a busy worker never sleeps and an idle one costs a query per duty per half second.

Stopping: SIGTERM or SIGINT lets the current unit finish, then the loop returns (exit status 0).
Only a second SIGINT (Ctrl-C pressed again) interrupts a unit; SIGTERM never does, because
`mailmarketer run` forwards SIGTERM to a worker that may already have had the terminal's SIGINT.

Start-up: the worker builds what its duties' first use would otherwise build mid-work, before
it says it started: the URLconf's reverse lookup, which every message's links are made with
(django.urls.reverse). The system checks import the URLconf, but the lookup of its routes (the
API's among them) is built by the first reverse(): ~100 ms of a worker's CPU inside the first
batch of the first campaign after a start, on the way to its first message (send15c).

Failures: a duty that raises is logged and the loop goes on after a backoff (1 s, doubling up
to 30 s, reset by a clean round), so a database that blinks, restarts or fails over does not
kill the worker. Connections are checked between rounds (close_old_connections), so a broken
one is replaced rather than reused.

The one built-in duty is `run_task_one`: it runs one job of django-tasks' database backend, so
imports, exports and reminders (anything defined with `@django_tasks.task`) run here too.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable

from django.conf import settings
from django.db import DatabaseError, OperationalError, close_old_connections
from django.urls import get_resolver

from . import metrics

logger = logging.getLogger("mailmarketer.worker")

Duty = Callable[[], bool]

_duties: list[Duty] = []

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0

# The worker running in this process (set by Worker.run), so that a long duty can see a stop
# request and end its unit early (stop_requested).
_running: Worker | None = None


def stop_requested() -> bool:
    """True when the worker running in this process was asked to stop: a duty that loops over
    several units of work (the delivery engine's send_some) checks it between units."""
    return _running is not None and _running.stopping


def register_duty(duty: Duty) -> Duty:
    """Add a duty to every worker's rounds (once, however often it is registered); usable as a
    decorator."""
    if duty not in _duties:
        _duties.append(duty)
    return duty


def registered_duties() -> list[Duty]:
    return list(_duties)


def duty_name(duty: Duty) -> str:
    return f"{getattr(duty, '__module__', '?')}.{getattr(duty, '__qualname__', repr(duty))}"


def worker_id() -> str:
    """Who claimed a job, as django-tasks records it: host and pid (at most 64 characters)."""
    return f"{socket.gethostname()[:48]}:{os.getpid()}"


class Worker:
    """Runs duties in rounds until asked to stop.

    `sleep`, `clock` and `check_connections` are injectable, so that tests can run the loop
    without waiting and without a database.
    """

    def __init__(
        self,
        duties: list[Duty] | None = None,
        *,
        idle_sleep: float | None = None,
        until_idle: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        check_connections: Callable[[], None] = close_old_connections,
    ):
        self.duties = registered_duties() if duties is None else list(duties)
        self.idle_sleep = settings.WORKER_IDLE_SLEEP if idle_sleep is None else idle_sleep
        self.until_idle = until_idle
        self.stopping = False
        self.backoff = 0.0
        self._sleep = sleep
        self._clock = clock
        self._check_connections = check_connections
        self._sigints = 0

    # -- signals ------------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.handle_signal)
        signal.signal(signal.SIGINT, self.handle_signal)

    def handle_signal(self, signum, frame) -> None:
        if signum == signal.SIGINT:
            self._sigints += 1
            if self._sigints > 1:
                logger.warning("second interrupt: stopping now, in the middle of the unit")
                raise KeyboardInterrupt
        if not self.stopping:
            logger.info("%s received: stopping after the current unit", signal.Signals(signum).name)
        self.stopping = True

    # -- the loop -----------------------------------------------------------------------------

    def run_round(self) -> bool:
        """Call each duty once (while not stopping); True when any of them found work."""
        found = False
        failed = False
        for duty in self.duties:
            if self.stopping:
                break
            started = time.monotonic()
            try:
                if duty():
                    found = True
                    metrics.DUTY_DURATION.labels(duty_name(duty)).observe(
                        time.monotonic() - started
                    )
            except DatabaseError:
                failed = True
                metrics.DUTY_FAILURES.labels(duty_name(duty)).inc()
                logger.exception("database error in duty %s; going on", duty_name(duty))
            except Exception:
                failed = True
                metrics.DUTY_FAILURES.labels(duty_name(duty)).inc()
                logger.exception("duty %s failed; going on", duty_name(duty))
        if failed:
            self.backoff = min(BACKOFF_MAX, self.backoff * 2 or BACKOFF_FIRST)
        else:
            self.backoff = 0.0
        return found

    def run(self) -> None:
        global _running
        _running = self
        try:
            self._run()
        finally:
            _running = None

    def _run(self) -> None:
        metrics.forget_dead_processes()
        load_urlconf()
        logger.info(
            "worker %s started with duties: %s",
            worker_id(),
            ", ".join(duty_name(d) for d in self.duties) or "(none)",
        )
        while not self.stopping:
            # A connection that broke (or outlived CONN_MAX_AGE) is closed here, so the next
            # round opens a fresh one instead of failing on the dead one.
            self._check_connections()
            found = self.run_round()
            self._check_connections()
            if self.stopping:
                break
            if self.backoff:
                logger.warning("retrying in %.0f s", self.backoff)
                self.pause(self.backoff)
            elif not found:
                if self.until_idle:
                    break
                self.pause(self.idle_sleep)
        logger.info("worker %s stopped", worker_id())

    def pause(self, seconds: float) -> None:
        """Sleep in short slices, so that a stop request is acted on within 0.1 s."""
        deadline = self._clock() + seconds
        while not self.stopping:
            remaining = deadline - self._clock()
            if remaining <= 0:
                return
            self._sleep(min(0.1, remaining))


def load_urlconf() -> None:
    """Import the URLconf and build its reverse lookup now (see the module's docstring)."""
    get_resolver().reverse_dict  # noqa: B018 (built on first access: this access builds it)


# -- the built-in duty: django-tasks jobs ------------------------------------------------------


def _database_backends() -> list[str]:
    from django_tasks import task_backends
    from django_tasks_db.backend import DatabaseBackend

    return [b.alias for b in task_backends.all() if isinstance(b, DatabaseBackend)]


def _runner():
    # django-tasks-db's own worker knows how to run a claimed job (context, signals, recording
    # success or failure, including errors while saving the result); reuse it rather than copy.
    from django_tasks_db.management.commands.db_worker import Worker as TaskWorker

    return TaskWorker(
        queue_names=["*"],
        interval=0,
        batch=False,
        backend_name="",
        startup_delay=False,
        max_tasks=None,
        worker_id=worker_id(),
        excluded_queue_names=[],
    )


@register_duty
def run_task_one() -> bool:
    """Claim and run one ready django-tasks job from the database backend(s)."""
    from django_tasks_db.models import DBTaskResult
    from django_tasks_db.utils import exclusive_transaction, is_locked_database_exception

    tasks = DBTaskResult.objects.ready().filter(backend_name__in=_database_backends())
    try:
        # The claim is django-tasks-db's: the oldest ready job by priority, locked with
        # SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL (so workers never wait on each other)
        # and inside an exclusive transaction on SQLite; claim() marks it running under our id.
        with exclusive_transaction(tasks.db):
            job = tasks.get_locked()
            if job is not None:
                job.claim(worker_id())
    except OperationalError as exc:
        if is_locked_database_exception(exc):
            return False  # another worker holds the lock: it is working, so no work for us now
        raise
    if job is None:
        return False
    _runner().run_task(job)
    return True
