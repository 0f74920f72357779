"""`mailmarketer genkey`: print a new encryption key for MM_ENCRYPTION_KEY.

`mailmarketer genkey` itself runs without reading any configuration (the CLI answers it before
setting Django up); this command is the same thing under `mailmarketer manage genkey`.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from mailmarketer.accounts.cli_args import COMMANDS, genkey_arguments
from mailmarketer.lib.crypto import generate_key


class Command(BaseCommand):
    help = COMMANDS["genkey"][0]
    requires_system_checks = []

    def add_arguments(self, parser):
        genkey_arguments(parser)

    def handle(self, **options):
        self.stdout.write(generate_key())
