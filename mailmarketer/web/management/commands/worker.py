"""`mailmarketer worker`: runs the registered duties (lib/worker.py) until SIGTERM or SIGINT,
then finishes the unit in hand and exits 0. Run as many as you like, on as many hosts: every
duty claims its work in the database."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from mailmarketer.lib.worker import Worker
from mailmarketer.web.cli_args import COMMANDS, worker_arguments


class Command(BaseCommand):
    help = COMMANDS["worker"][0]

    def add_arguments(self, parser):
        worker_arguments(parser)

    def handle(self, *, until_idle, **options):
        worker = Worker(until_idle=until_idle)
        worker.install_signal_handlers()
        worker.run()
