"""`mailmarketer bouncer --listen 127.0.0.1:2525`: the bounce receiver (delivery/bounces/
receiver.py) until SIGTERM or SIGINT. Point the MTA's transport for the bounce domain at it
(docs/bounces.md)."""

from __future__ import annotations

import asyncio

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mailmarketer.delivery.bounces.receiver import BounceHandler, serve
from mailmarketer.delivery.cli_args import COMMANDS, bouncer_arguments


class Command(BaseCommand):
    help = COMMANDS["bouncer"][0]

    def add_arguments(self, parser):
        bouncer_arguments(parser)

    def handle(self, *, listen, domains, **options):
        domains = domains or settings.BOUNCER_DOMAINS
        if not domains:
            raise CommandError(
                "no bounce domain: set MM_BOUNCER_DOMAINS (or MM_BOUNCE_DOMAIN), or pass --domain"
            )
        handler = BounceHandler(
            domains,
            max_bytes=settings.BOUNCER_MAX_BYTES,
            rate_per_minute=settings.BOUNCER_RATE_PER_MINUTE,
        )
        host, port = listen

        def ready(address):
            self.stdout.write(
                f"bouncer listening on {address[0]}:{address[1]} for "
                f"{', '.join(sorted(handler.domains))}",
            )
            self.stdout.flush()

        try:
            asyncio.run(serve(host, port, handler, ready=ready))
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
