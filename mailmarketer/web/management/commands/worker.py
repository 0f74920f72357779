"""`mailmarketer worker`: runs the registered duties (lib/worker.py) until SIGTERM or SIGINT,
then finishes the unit in hand and exits 0. Run as many as you like, on as many hosts: every
duty claims its work in the database."""

from __future__ import annotations

import gc

from django.core.management.base import BaseCommand

from mailmarketer.lib.worker import Worker
from mailmarketer.web.cli_args import COMMANDS, worker_arguments


class Command(BaseCommand):
    help = COMMANDS["worker"][0]

    def add_arguments(self, parser):
        worker_arguments(parser)

    def handle(self, *, until_idle, **options):
        worker = Worker(until_idle=until_idle)
        # What is loaded by now (Django, the apps, the URLconf that the system checks import:
        # ~160,000 objects the garbage collector tracks) lives as long as the process: kept out
        # of the collector's full passes, each of which walked all of them (82-85 ms, once
        # every ~10,000 messages sent: ~8 us a message, measured with gc.callbacks in a sending
        # loop; none in the same loop after).
        gc.freeze()
        worker.install_signal_handlers()
        worker.run()
