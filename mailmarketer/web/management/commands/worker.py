"""`mailmarketer worker`: runs the registered duties (lib/worker.py) until SIGTERM or SIGINT,
then finishes the unit in hand and exits 0. Run as many as you like, on as many hosts: every
duty claims its work in the database."""

from __future__ import annotations

import gc

from django.core.management.base import BaseCommand
from django.urls import get_resolver

from mailmarketer.lib.worker import Worker
from mailmarketer.web.cli_args import COMMANDS, worker_arguments


class Command(BaseCommand):
    help = COMMANDS["worker"][0]

    def add_arguments(self, parser):
        worker_arguments(parser)

    def handle(self, *, until_idle, **options):
        # The links in every message are reversed URLs, and the first reverse() imports the
        # whole URLconf, the API's schemas included: ~0.34 s of CPU (measured, send13e), which
        # the first campaign a worker sends used to wait for (and a 20,000-recipient benchmark
        # with two workers counted as ~34 us a message). Done once here, before the worker
        # says it started.
        get_resolver().reverse_dict  # noqa: B018 - populates the resolver
        worker = Worker(until_idle=until_idle)
        # What is loaded by now (Django, the apps, the URLconf: ~160,000 objects the garbage
        # collector tracks) lives as long as the process: kept out of the collector's full
        # passes, each of which walked all of them (82-85 ms, once every ~10,000 messages
        # sent: ~8 us a message, measured with gc.callbacks in a sending loop; 0 after).
        gc.freeze()
        worker.install_signal_handlers()
        worker.run()
