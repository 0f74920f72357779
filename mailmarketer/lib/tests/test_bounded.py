"""Running a function in a child process under a hard limit (lib.bounded)."""

from __future__ import annotations

import os
import time

import pytest

from mailmarketer.lib.bounded import Overrun, run_bounded


def test_it_returns_the_result_of_the_child():
    assert run_bounded(sum, ([1, 2, 3],), seconds=10) == 6


def test_it_raises_the_exception_of_the_child_again():
    with pytest.raises(ZeroDivisionError):
        run_bounded(divmod, (1, 0), seconds=10)


def test_it_kills_a_child_that_runs_past_its_time():
    with pytest.raises(Overrun) as info:
        run_bounded(time.sleep, (60,), seconds=0.1)
    assert "longer than 0.1 s" in str(info.value)


def test_it_stops_a_child_that_allocates_past_its_memory():
    with pytest.raises(MemoryError):
        run_bounded(bytearray, (2**30,), seconds=10, memory=64 * 2**20)


def test_it_leaves_no_child_behind():
    pid = run_bounded(os.getpid, seconds=10)
    assert pid != os.getpid()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
