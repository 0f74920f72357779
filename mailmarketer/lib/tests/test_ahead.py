import threading
import time

import pytest

from mailmarketer.lib.ahead import ahead


def test_items_arrive_in_order_and_all_of_them():
    with ahead(iter(range(1000)), depth=2) as items:
        assert list(items) == list(range(1000))


def test_the_generator_runs_in_another_thread():
    def where():
        yield threading.current_thread().name

    with ahead(where(), name="import-reader") as items:
        assert list(items) == ["import-reader"]


def test_an_exception_is_raised_in_the_consumer_after_the_items_before_it():
    def failing():
        yield 1
        yield 2
        raise ValueError("line 3: broken")

    got = []
    with pytest.raises(ValueError, match="line 3: broken"), ahead(failing()) as items:
        for item in items:
            got.append(item)
    assert got == [1, 2]


def test_the_producer_stays_at_most_depth_items_ahead():
    produced = []

    def counting():
        for i in range(100):
            produced.append(i)
            yield i

    with ahead(counting(), depth=2) as items:
        first = next(items)
        time.sleep(0.3)  # ample time to run ahead, were it unbounded
        # One consumed, two waiting in the queue, one made and waiting for room.
        assert first == 0
        assert len(produced) <= 4


def test_leaving_early_stops_the_generator_and_runs_its_clean_up():
    cleaned = threading.Event()
    produced = []

    def endless():
        try:
            i = 0
            while True:
                produced.append(i)
                yield i
                i += 1
        finally:
            cleaned.set()

    with pytest.raises(RuntimeError), ahead(endless(), depth=1) as items:
        for item in items:
            if item == 3:
                raise RuntimeError("the consumer failed")
    # The block waited for the thread: the generator is closed, and makes nothing more.
    assert cleaned.is_set()
    count = len(produced)
    time.sleep(0.2)
    assert len(produced) == count
    assert not [t for t in threading.enumerate() if t.name == "ahead"]


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth"), ahead(iter([]), depth=0):
        pass
