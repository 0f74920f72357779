"""The worker loop and its built-in duty, run_task_one.

Duties and the loop are called directly (no threads, no real sleeps); one test starts the real
`mailmarketer worker` process to check that SIGTERM lets the job in hand finish.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import OperationalError
from django.utils import timezone
from django_tasks import TaskResultStatus, task

from mailmarketer.lib import worker as worker_module
from mailmarketer.lib.tests.processes import MAILMARKETER, cli_env, run_cli, stop, wait_for
from mailmarketer.lib.worker import Worker, register_duty, registered_duties, run_task_one

# -- tasks the tests enqueue (module-level, so the worker can import them by path) -------------


@task()
def add(a, b):
    return a + b


@task()
def explode():
    raise ValueError("this job always fails")


@task()
def slow_marker(directory):
    """Marks its start, works for a moment, marks its end: shows a unit being finished."""
    Path(directory, "started").touch()
    time.sleep(1.5)
    Path(directory, "done").touch()
    return "done"


# -- run_task_one ------------------------------------------------------------------------------


def test_it_runs_a_queued_task_and_records_its_result(db):
    result = add.enqueue(2, 3)

    assert run_task_one() is True

    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.worker_ids == [worker_module.worker_id()]


def test_it_finds_no_work_when_nothing_is_queued(db):
    assert run_task_one() is False


def test_it_runs_one_task_per_call(db):
    first = add.enqueue(1, 1)
    second = add.enqueue(2, 2)

    assert run_task_one() is True
    first.refresh()
    second.refresh()
    statuses = sorted([first.status, second.status])
    assert statuses == sorted([TaskResultStatus.SUCCESSFUL, TaskResultStatus.READY])

    assert run_task_one() is True
    assert run_task_one() is False


def test_it_records_a_failing_task_as_failed_and_reports_work_done(db):
    result = explode.enqueue()

    assert run_task_one() is True

    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class is ValueError
    assert run_task_one() is False  # a failed job is not picked up again


def test_it_leaves_a_task_scheduled_for_later_alone(db):
    later = add.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(1, 2)

    assert run_task_one() is False

    later.refresh()
    assert later.status == TaskResultStatus.READY


def test_it_registers_the_task_runner_as_a_duty():
    assert run_task_one in registered_duties()


def test_it_registers_a_duty_once(monkeypatch):
    monkeypatch.setattr(worker_module, "_duties", [])

    def tidy_one():
        return False

    register_duty(tidy_one)
    register_duty(tidy_one)

    assert registered_duties() == [tidy_one]


# -- the loop ----------------------------------------------------------------------------------


def no_database():
    """Stands in for close_old_connections: these loop tests use no database."""


class FakeTime:
    """A clock that moves only when the worker sleeps."""

    def __init__(self):
        self.now = 0.0
        self.slept = []

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds

    def clock(self):
        return self.now


def scripted(results, worker_ref, calls):
    """A duty answering `results` in turn, asking the worker to stop when they run out."""
    results = list(results)

    def work_one():
        calls.append("work")
        if not results:
            worker_ref[0].stopping = True
            return False
        return results.pop(0)

    return work_one


def test_it_sleeps_only_after_a_round_in_which_no_duty_found_work():
    fake, calls, ref = FakeTime(), [], [None]
    ref[0] = worker = Worker(
        [scripted([True, True, False, True], ref, calls)],
        idle_sleep=0.5,
        sleep=fake.sleep,
        clock=fake.clock,
        check_connections=no_database,
    )

    worker.run()

    assert len(calls) == 5
    # One idle pause, after the third round, taken in slices so a stop is noticed quickly.
    assert sum(fake.slept) == pytest.approx(0.5)
    assert max(fake.slept) <= 0.1


def test_it_keeps_going_after_a_database_error_and_backs_off(caplog):
    fake, calls = FakeTime(), []

    def broken_one():
        raise OperationalError("server closed the connection unexpectedly")

    def other_one():
        calls.append("other")
        return True

    worker = Worker([broken_one, other_one], idle_sleep=0.5, sleep=fake.sleep, clock=fake.clock)

    assert worker.run_round() is True  # the other duty still ran and found work
    assert calls == ["other"]
    assert worker.backoff == worker_module.BACKOFF_FIRST
    assert "database error in duty" in caplog.text
    assert "broken_one" in caplog.text

    worker.run_round()
    assert worker.backoff == 2 * worker_module.BACKOFF_FIRST


def test_it_caps_the_backoff_and_resets_it_after_a_clean_round():
    failing = [True]

    def flaky_one():
        if failing[0]:
            raise OperationalError("database is down")
        return False

    worker = Worker([flaky_one], idle_sleep=0.5)
    for _ in range(20):
        worker.run_round()
    assert worker.backoff == worker_module.BACKOFF_MAX

    failing[0] = False
    worker.run_round()
    assert worker.backoff == 0


def test_it_waits_out_the_backoff_before_the_next_round():
    fake, attempts, ref = FakeTime(), [], [None]

    def blinking_one():
        attempts.append(fake.now)
        if len(attempts) == 1:
            raise OperationalError("database is restarting")
        ref[0].stopping = True
        return True

    ref[0] = worker = Worker(
        [blinking_one],
        idle_sleep=0.5,
        sleep=fake.sleep,
        clock=fake.clock,
        check_connections=no_database,
    )

    worker.run()

    assert attempts[1] - attempts[0] == pytest.approx(worker_module.BACKOFF_FIRST)


def test_it_survives_a_duty_with_a_bug(caplog):
    def buggy_one():
        raise KeyError("oops")

    worker = Worker([buggy_one], idle_sleep=0.5)

    assert worker.run_round() is False
    assert "duty" in caplog.text and "buggy_one failed" in caplog.text


def test_it_finishes_the_current_unit_then_stops_on_sigterm():
    done, ref = [], [None]

    def first_one():
        ref[0].handle_signal(signal.SIGTERM, None)  # arrives in the middle of the unit
        done.append("first finished")
        return True

    def second_one():
        done.append("second")
        return True

    ref[0] = worker = Worker(
        [first_one, second_one], idle_sleep=0.5, sleep=pytest.fail, check_connections=no_database
    )

    worker.run()

    assert done == ["first finished"]
    assert worker.stopping


def test_it_treats_sigint_then_sigterm_as_one_stop_request():
    worker = Worker([], idle_sleep=0.5)

    worker.handle_signal(signal.SIGINT, None)
    worker.handle_signal(signal.SIGTERM, None)
    worker.handle_signal(signal.SIGTERM, None)

    assert worker.stopping


def test_it_interrupts_the_unit_on_a_second_sigint():
    worker = Worker([], idle_sleep=0.5)
    worker.handle_signal(signal.SIGINT, None)

    with pytest.raises(KeyboardInterrupt):
        worker.handle_signal(signal.SIGINT, None)


def test_it_checks_the_database_connections_around_every_round():
    checks, ref = [], [None]

    def work_one():
        checks.append("work")
        ref[0].stopping = True
        return True

    ref[0] = worker = Worker(
        [work_one], idle_sleep=0.5, check_connections=lambda: checks.append("check")
    )

    worker.run()

    assert checks == ["check", "work", "check"]


def test_it_exits_when_idle_with_until_idle():
    fake = FakeTime()
    worker = Worker(
        [lambda: False],
        idle_sleep=0.5,
        until_idle=True,
        sleep=fake.sleep,
        clock=fake.clock,
        check_connections=no_database,
    )

    worker.run()

    assert fake.slept == []


def test_it_loads_the_urlconf_before_its_first_duty(monkeypatch):
    # Every message's links come from reverse(): its lookup, built on first use, cost ~100 ms
    # of CPU inside a campaign's first batch. A worker builds it before saying it started.
    fake, calls, ref = FakeTime(), [], [None]
    monkeypatch.setattr(worker_module, "load_urlconf", lambda: calls.append("urlconf"))
    ref[0] = worker = Worker(
        [scripted([], ref, calls)],
        idle_sleep=0.5,
        sleep=fake.sleep,
        clock=fake.clock,
        check_connections=no_database,
    )

    worker.run()

    assert calls == ["urlconf", "work"]


def test_it_builds_the_urlconfs_reverse_lookup_when_it_loads_it():
    from django.urls import clear_url_caches, get_resolver

    clear_url_caches()
    assert not get_resolver()._populated

    worker_module.load_urlconf()

    assert get_resolver()._populated


# -- the real process --------------------------------------------------------------------------


@pytest.mark.slow
def test_it_finishes_the_job_in_hand_and_exits_0_on_sigterm(tmp_path):
    """`mailmarketer worker` on its own SQLite data directory (whatever database the suite
    runs on): a job is running when SIGTERM arrives; the job completes, the process exits 0."""
    env = cli_env(tmp_path / "var")
    assert run_cli("migrate", env=env, cwd=tmp_path).returncode == 0
    marks = tmp_path / "marks"
    marks.mkdir()
    enqueue = (
        "from mailmarketer.lib.tests.test_worker import slow_marker; "
        f"slow_marker.enqueue({str(marks)!r})"
    )
    queued = run_cli("manage", "shell", "-c", enqueue, env=env, cwd=tmp_path)
    assert queued.returncode == 0, queued.stderr

    proc = subprocess.Popen(
        [MAILMARKETER, "worker"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for((marks / "started").exists, timeout=30, what="the job to start")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    finally:
        stop(proc)

    assert proc.returncode == 0, stderr
    assert (marks / "done").exists(), "the job in hand was cut short"
    assert "SIGTERM received: stopping after the current unit" in stderr
    with sqlite3.connect(tmp_path / "var" / "mailmarketer.sqlite3") as db:
        statuses = db.execute("SELECT status FROM django_tasks_database_dbtaskresult").fetchall()
    assert statuses == [(TaskResultStatus.SUCCESSFUL.value,)]
