"""The arguments of `bouncer`, shared by the management command and the `mailmarketer` command
line (mailmarketer/cli.py), so `--help` works before any configuration is read."""

from __future__ import annotations

import argparse


def listen_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def bouncer_arguments(parser) -> None:
    parser.add_argument(
        "--listen",
        type=listen_address,
        default=("127.0.0.1", 2525),
        metavar="HOST:PORT",
        help="address to receive bounces on (default: 127.0.0.1:2525)",
    )
    parser.add_argument(
        "--domain",
        dest="domains",
        action="append",
        default=[],
        metavar="DOMAIN",
        help="a bounce domain to accept bounces@ and bounces+...@ of; repeat for several "
        "(default: $MM_BOUNCER_DOMAINS, or $MM_BOUNCE_DOMAIN)",
    )


COMMANDS = {
    "bouncer": (
        "receive bounces and complaints by SMTP from your MTA, and apply them",
        bouncer_arguments,
    ),
}
