import gc

import pytest
from django.core.management import call_command

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


def test_it_keeps_what_it_loaded_at_start_out_of_the_garbage_collectors_passes(no_loop):
    gc.unfreeze()
    try:
        call_command("worker", until_idle=True)
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
