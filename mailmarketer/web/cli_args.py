"""The arguments of the commands in web (run, web, worker), shared by the management commands and
the `mailmarketer` command line (mailmarketer/cli.py), so both accept exactly the same options
and `--help` works before any configuration is read: nothing here needs Django set up."""

from __future__ import annotations

import argparse


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def run_arguments(parser) -> None:
    parser.add_argument(
        "--bind",
        metavar="HOST:PORT",
        help="address for the web server (default: 127.0.0.1:$PORT, PORT defaulting to 8000)",
    )


def web_arguments(parser) -> None:
    parser.add_argument(
        "--bind",
        metavar="HOST:PORT",
        help="address to listen on (default: 127.0.0.1:$PORT, PORT defaulting to 8000)",
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="worker processes (default: $MM_WEB_WORKERS, or 2)",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        metavar="N",
        help="threads per worker process (default: $MM_WEB_THREADS, or 4)",
    )


def worker_arguments(parser) -> None:
    parser.add_argument(
        "--until-idle",
        action="store_true",
        help="exit (status 0) after the first round in which no duty found work",
    )


COMMANDS = {
    "run": (
        "migrate, print the first-run setup link, then run the web server and a worker",
        run_arguments,
    ),
    "web": ("run the web server (gunicorn)", web_arguments),
    "worker": ("run a worker: background jobs and other duties", worker_arguments),
}
