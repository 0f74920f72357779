"""The `mailmarketer` command line.

Every subcommand is a Django management command (createuser, token, rotatekey and genkey in
accounts; run, web and worker in web; import in audience). This module only:

1. parses the arguments, so `--help` and usage errors work before any configuration is read
   (the argument definitions live here and the commands reuse them, so `mailmarketer createuser`
   and `mailmarketer manage createuser` accept exactly the same options);
2. loads `.env` from the current directory (variables already in the environment win);
3. sets Django up, turning a configuration error into one line naming the variable and exit
   status 2 (no traceback: the operator has a setting to fix, not a bug to report);
4. runs the command, printing a CommandError as one line.

`genkey` needs no configuration at all: the error for a missing MM_ENCRYPTION_KEY tells the
operator to run it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

PROG = "mailmarketer"

# Subcommands handed to Django's own command-line handling, arguments and all.
PASSTHROUGH = {
    "manage": "run any Django management command: mailmarketer manage <command> [args]",
    "migrate": "apply database migrations (a shortcut for `manage migrate`)",
}


class DotenvError(Exception):
    """A line of the .env file is not KEY=VALUE; the message names the file and line."""


# -- argument definitions, shared with the management commands --------------------------------


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


def createuser_arguments(parser) -> None:
    parser.add_argument("--email", required=True, help="the staff member's email (their login)")
    parser.add_argument(
        "--workspace",
        required=True,
        metavar="SLUG",
        help="workspace slug; created (named after the slug) when it does not exist",
    )
    parser.add_argument("--role", required=True, help=_roles_help())
    parser.add_argument("--name", default="", help="display name")
    parser.add_argument(
        "--password-file",
        metavar="FILE",
        help="read the password from FILE ('-' for standard input). Without it the password "
        "is asked for when standard input is a terminal; otherwise the user gets no password "
        "and sets one with the password-reset link",
    )


def _roles_help() -> str:
    # permissions.py needs no configuration to import, so the help can list the real roles.
    from mailmarketer.accounts.permissions import Role

    return "one of: " + ", ".join(Role.values)


def token_arguments(parser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="create a token and print it (only the token, on standard output)",
        description="Create an API token. Only the token is printed on standard output, so "
        "TOKEN=$(mailmarketer token create ...) works; it is shown this once and stored hashed.",
    )
    create.add_argument("--workspace", required=True, metavar="SLUG")
    create.add_argument("--role", required=True, help=_roles_help())
    create.add_argument("--name", required=True, help="what the token is for")
    listing = actions.add_parser("list", help="list a workspace's tokens")
    listing.add_argument("--workspace", required=True, metavar="SLUG")
    revoke = actions.add_parser("revoke", help="revoke a token by its prefix")
    revoke.add_argument("--workspace", required=True, metavar="SLUG")
    revoke.add_argument(
        "--prefix", required=True, help="the token's prefix, as `token list` shows it"
    )


def rotatekey_arguments(parser) -> None:
    parser.add_argument(
        "--generate",
        action="store_true",
        help="for the embedded default only (no MM_ENCRYPTION_KEY set): generate a new key "
        "into the data directory, re-encrypt every secret under it and drop the old key. "
        "Stop the web and worker processes first",
    )


def genkey_arguments(parser) -> None:
    """genkey takes no arguments."""


def import_arguments(parser) -> None:
    parser.add_argument(
        "file",
        metavar="FILE",
        help="a CSV file with a header line: .csv, .csv.gz, or a .zip "
        "holding one CSV (UTF-8 or Latin-1; comma, semicolon or tab)",
    )
    parser.add_argument("--workspace", required=True, metavar="SLUG")
    parser.add_argument(
        "--list",
        dest="lists",
        action="append",
        default=[],
        metavar="SLUG",
        help="a list to subscribe people to; repeat for several (subscribe mode needs one)",
    )
    parser.add_argument(
        "--mode",
        choices=("subscribe", "update", "blocklist"),
        default="subscribe",
        help="subscribe: add people and subscribe them (the default); update: change existing "
        "subscribers' name and attributes; blocklist: blocklist the addresses",
    )
    parser.add_argument(
        "--confirmed",
        action="store_true",
        help="subscribe as confirmed (you hold their consent); needs --notice-text",
    )
    parser.add_argument(
        "--notice-text",
        default="",
        metavar="TEXT",
        help="the consent notice the people agreed to, kept with each consent record",
    )
    parser.add_argument(
        "--email-column",
        metavar="COLUMN",
        help="header name or number (from 1) of the email column (default: found by its name)",
    )
    parser.add_argument(
        "--name-column", metavar="COLUMN", help="header name or number of the name column"
    )
    parser.add_argument(
        "--attributes",
        choices=("merge", "overwrite"),
        default="merge",
        help="update mode: merge the file's attributes into the stored ones, or replace them",
    )


SUBCOMMANDS = {
    "run": (
        "migrate, print the first-run setup link, then run the web server and a worker",
        run_arguments,
    ),
    "web": ("run the web server (gunicorn)", web_arguments),
    "worker": ("run a worker: background jobs and other duties", worker_arguments),
    "createuser": ("create a staff user and give them a role in a workspace", createuser_arguments),
    "token": ("create, list and revoke API tokens", token_arguments),
    "rotatekey": ("re-encrypt every secret under the primary encryption key", rotatekey_arguments),
    "genkey": ("print a new encryption key (for MM_ENCRYPTION_KEY)", genkey_arguments),
    "import": ("import subscribers from a CSV file, showing progress", import_arguments),
}


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Mail Marketer: self-hosted email marketing. Configuration comes from the "
        "environment and from a .env file in the current directory (see docs/settings.md).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, add_arguments) in SUBCOMMANDS.items():
        sub = commands.add_parser(
            name, help=help_text, description=help_text[:1].upper() + help_text[1:] + "."
        )
        add_arguments(sub)
    for name, help_text in PASSTHROUGH.items():
        commands.add_parser(name, help=help_text, add_help=False)
    return parser


# -- .env --------------------------------------------------------------------------------------

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_dotenv(text: str, source: str = ".env") -> dict[str, str]:
    """KEY=VALUE lines. Blank lines and lines starting with # are skipped; `export ` before a
    key is allowed; a value in matching single or double quotes loses the quotes (and keeps any
    # inside). There are no inline comments and no variable expansion: what is written is what
    is set."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].lstrip()
        key, sep, value = stripped.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            raise DotenvError(f"{source} line {number}: expected KEY=VALUE, got {line.strip()!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif value[:1] in ("'", '"'):
            raise DotenvError(f"{source} line {number}: {key}: the closing quote is missing")
        values[key] = value
    return values


def load_dotenv(path: Path, environ=None) -> list[str]:
    """Set the file's variables that the environment does not already have; returns their
    names. A missing file is fine (the environment alone is a complete configuration)."""
    environ = os.environ if environ is None else environ
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise DotenvError(f"{path}: cannot read it: {exc.strerror}") from exc
    loaded = []
    for key, value in parse_dotenv(text, str(path)).items():
        if key not in environ:
            environ[key] = value
            loaded.append(key)
    return loaded


# -- running -------------------------------------------------------------------------------------


def _setup_django() -> None:
    load_dotenv(Path.cwd() / ".env")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailmarketer.settings")
    import django

    django.setup()


def _run_command(name: str, argv: list[str]) -> int:
    """What Django's run_from_argv does, with our own program name and error line."""
    from django.core.management import get_commands, load_command_class
    from django.core.management.base import CommandError
    from django.db import connections

    command = load_command_class(get_commands()[name], name)
    parser = command.create_parser(PROG, name)
    options = vars(parser.parse_args(argv))
    args = options.pop("args", ())
    try:
        command.execute(*args, **options)
    except CommandError as exc:
        print(f"{PROG} {name}: error: {exc}", file=sys.stderr)
        return exc.returncode
    finally:
        connections.close_all()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in PASSTHROUGH:
        name, rest = argv[0], argv[1:]
    else:
        name = build_parser().parse_args(argv).command
        rest = argv[1:]

    if name == "genkey":
        from mailmarketer.lib.crypto import generate_key

        print(generate_key())
        return 0

    from mailmarketer.lib.env import ConfigError

    try:
        _setup_django()
        if name in PASSTHROUGH:
            from django.core.management import execute_from_command_line

            head = [f"{PROG} manage"] if name == "manage" else [PROG, "migrate"]
            execute_from_command_line(head + rest)
            return 0
        return _run_command(name, rest)
    except ConfigError as exc:
        print(f"{PROG}: configuration error: {exc}", file=sys.stderr)
        return 2
    except DotenvError as exc:
        print(f"{PROG}: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C outside the long-running commands (which handle it themselves): no traceback.
        return 130


if __name__ == "__main__":
    sys.exit(main())
