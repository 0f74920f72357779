import gc

import pytest
from django.core.management import call_command
from django.urls import clear_url_caches, get_resolver

from mailmarketer.web.management.commands import worker as worker_command


class IdleWorker:
    """The worker loop left out: what the command does before it is under test."""

    def __init__(self, **options):
        pass

    def install_signal_handlers(self):
        pass

    def run(self):
        pass


@pytest.fixture
def no_loop(monkeypatch):
    monkeypatch.setattr(worker_command, "Worker", IdleWorker)


def test_it_loads_the_urlconf_before_the_worker_starts(no_loop):
    # The first message's links are reversed URLs: the URLconf (~0.34 s of CPU to import) is
    # loaded at start, not when the first campaign is launched.
    clear_url_caches()
    assert not get_resolver()._populated
    call_command("worker", until_idle=True)
    assert get_resolver()._populated


def test_it_keeps_what_it_loaded_at_start_out_of_the_garbage_collectors_passes(no_loop):
    gc.unfreeze()
    try:
        call_command("worker", until_idle=True)
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
