"""The `mailmarketer` command line.

Every subcommand is a Django management command (createuser, token, rotatekey and genkey in
accounts; run, web and worker in web; import in audience; bouncer in delivery). This module only:

1. parses the arguments, so `--help` and usage errors work before any configuration is read
   (the argument definitions live beside the commands, in each package's cli_args.py, and
   this parser reuses them, so `mailmarketer createuser` and `mailmarketer manage createuser`
   accept exactly the same options);
2. loads `.env` from the current directory, then the `.env` that `mailmarketer run` writes into
   the data directory for a local evaluation (variables already set win: the environment
   first, then the current directory's file);
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

from mailmarketer.accounts import cli_args as accounts_cli
from mailmarketer.audience import cli_args as audience_cli
from mailmarketer.delivery import cli_args as delivery_cli
from mailmarketer.tracking import cli_args as tracking_cli
from mailmarketer.web import cli_args as web_cli

PROG = "mailmarketer"

# Subcommands handed to Django's own command-line handling, arguments and all.
PASSTHROUGH = {
    "manage": "run any Django management command: mailmarketer manage <command> [args]",
    "migrate": "apply database migrations (a shortcut for `manage migrate`)",
}


class DotenvError(Exception):
    """A line of the .env file is not KEY=VALUE; the message names the file and line."""


# The argument definitions live with the commands (each package's cli_args.py), which the
# management commands and this parser share; the order here is the order `--help` lists them.
SUBCOMMANDS = {
    **web_cli.COMMANDS,
    **accounts_cli.COMMANDS,
    **audience_cli.COMMANDS,
    **delivery_cli.COMMANDS,
    **tracking_cli.COMMANDS,
}


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


def local_env_path(environ=None) -> Path:
    """The data directory's .env (see lib.datafiles.LOCAL_ENV_NAME): MM_DATA_DIR as the
    environment or the current directory's .env gives it, else the checkout's var/."""
    from mailmarketer.lib.datafiles import DEFAULT_DATA_DIR, LOCAL_ENV_NAME
    from mailmarketer.lib.env import env_path

    return env_path("MM_DATA_DIR", DEFAULT_DATA_DIR, environ) / LOCAL_ENV_NAME


def _setup_django() -> None:
    load_dotenv(Path.cwd() / ".env")
    load_dotenv(local_env_path())
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
