"""`mailmarketer rotatekey [--generate]`: re-encrypt every secret under the primary key.

With MM_ENCRYPTION_KEY (yours to manage): put a new key first, keep the old one after it,
restart, run this, then drop the old key. With the embedded default (a key file in the data
directory), `--generate` does all of that to the file, while the processes are stopped.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mailmarketer.accounts.cli_args import COMMANDS, rotatekey_arguments
from mailmarketer.lib import env
from mailmarketer.lib.crypto import DecryptionError, rotate_all, rotate_key_file


def _secrets(count: int) -> str:
    return f"{count} secret{'' if count == 1 else 's'}"


class Command(BaseCommand):
    help = COMMANDS["rotatekey"][0]

    def add_arguments(self, parser):
        rotatekey_arguments(parser)

    def handle(self, *, generate, **options):
        try:
            if generate:
                self.generate()
            else:
                count = rotate_all()
                self.stdout.write(
                    f"Re-encrypted {_secrets(count)} under the primary key (the first one of "
                    f"{self.key_source()})."
                )
                if len(settings.ENCRYPTION_KEYS) == 1:
                    self.stderr.write(
                        "Only one key is configured, so that was the key they already had. To "
                        "change keys: " + self.procedure(),
                        style_func=str,
                    )
        except DecryptionError as exc:
            raise CommandError(
                f"{exc}. Every key that encrypted a secret must be configured until rotatekey "
                "has finished."
            ) from None

    def generate(self) -> None:
        if env.raw("MM_ENCRYPTION_KEY") is not None:
            raise CommandError(
                "MM_ENCRYPTION_KEY is set, so the keys are yours to manage and --generate would "
                "not change them. " + self.procedure()
            )
        count = rotate_key_file()
        self.stdout.write(
            f"Generated a new key into {settings.ENCRYPTION_KEY_FILE} and re-encrypted "
            f"{_secrets(count)} under it; the old key is gone. Start the web and worker "
            "processes again now."
        )

    def key_source(self) -> str:
        if env.raw("MM_ENCRYPTION_KEY") is not None:
            return "MM_ENCRYPTION_KEY"
        return str(settings.ENCRYPTION_KEY_FILE)

    @staticmethod
    def procedure() -> str:
        if env.raw("MM_ENCRYPTION_KEY") is None:
            return "stop the web and worker processes and run `mailmarketer rotatekey --generate`."
        return (
            "make a key with `mailmarketer genkey`, put it first in MM_ENCRYPTION_KEY "
            "(MM_ENCRYPTION_KEY=new,old), restart the web and worker processes, run "
            "`mailmarketer rotatekey`, then remove the old key and restart them again."
        )
