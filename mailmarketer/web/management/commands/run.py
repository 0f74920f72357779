"""`mailmarketer run` (what `make run` starts): everything on one machine, in one terminal.

1. Applies migrations (SQLite under var/ unless MM_DATABASE_URL says otherwise). With MM_DEBUG
   on (what `make run` sets) it writes `MM_DEBUG=true` into the data directory's `.env` the
   first time, so every later command run from a fresh shell (`mailmarketer token create`, ...)
   finds the same local-evaluation settings; the keys it needs are generated files beside it.
2. While no user exists, prints the one-time link where the first owner sets a password.
3. Starts `mailmarketer web` and `mailmarketer worker` as child processes and watches them.

Stopping: SIGINT (Ctrl-C) or SIGTERM is forwarded to both children as SIGTERM (each finishes what
it is doing), they get STOP_TIMEOUT seconds, then whatever is left is killed; exit 0 when both
stopped by themselves. If either child dies on its own, the other is stopped the same way and
the exit status is non-zero, so a supervisor notices.

The children share the terminal's process group, so Ctrl-C reaches them directly as well; the
worker treats SIGINT followed by SIGTERM as one stop request, and gunicorn stops either way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from mailmarketer.accounts.setup import setup_needed, setup_url
from mailmarketer.lib import env
from mailmarketer.lib.datafiles import LOCAL_ENV_NAME, open_private
from mailmarketer.web.cli_args import COMMANDS, run_arguments

from .web import default_bind, split_bind

LOCAL_ENV_TEXT = """\
# Written by `mailmarketer run` (what `make run` starts) for a local evaluation: every
# `mailmarketer` command reads this file, so the command line works in a fresh shell. The
# secret and encryption keys are the generated files beside it (secret.key, encryption.key).
# Variables set in the environment win. For production, delete this file and configure the
# environment instead (README, "Production deployment").
MM_DEBUG=true
"""
STOP_TIMEOUT = 12.0  # gunicorn's graceful timeout is 10 s
POLL = 0.2


def local_base_url(bind: str) -> str:
    """Where this machine reaches the server that `bind` starts."""
    host, port = split_bind(bind)
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming the wildcard, not binding to it
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if settings.TLS_CERT else "http"
    return f"{scheme}://{host}:{port}"


class Command(BaseCommand):
    help = COMMANDS["run"][0]

    def add_arguments(self, parser):
        run_arguments(parser)

    def handle(self, *, bind, **options):
        bind = bind or default_bind()
        split_bind(bind)
        child_env = dict(os.environ)
        if env.raw("MM_BASE_URL") is None:
            # The default base URL names port 8000; on another port the links we print and the
            # links in mail must name the port the server really listens on.
            settings.BASE_URL = local_base_url(bind)
            child_env["MM_BASE_URL"] = settings.BASE_URL

        if settings.DEBUG:
            self.remember_local_settings()
        self.stdout.write("Applying database migrations...")
        call_command("migrate", interactive=False, verbosity=1)
        if setup_needed():
            self.print_setup_link(setup_url())
        connections.close_all()  # the children open their own

        self.signals = []
        previous = {
            sig: signal.signal(sig, self.on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            return self.supervise(bind, child_env)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def remember_local_settings(self) -> None:
        path = settings.DATA_DIR / LOCAL_ENV_NAME
        try:
            with open_private(path, "xb") as out:
                out.write(LOCAL_ENV_TEXT.encode())
        except FileExistsError:
            return  # the operator's own edits stay
        self.stdout.write(f"Local evaluation settings written to {path} (commands read them too).")

    def on_signal(self, signum, frame):
        self.signals.append(signum)

    def print_setup_link(self, url: str) -> None:
        line = "-" * 72
        self.stdout.write(
            f"\n{line}\n"
            "  First run: no user exists yet. Open this one-time link to create the first\n"
            f"  owner and choose their password (it works for "
            f"{settings.SETUP_LINK_MAX_AGE // 86400} days, until someone has used it):\n\n"
            f"    {url}\n"
            f"{line}\n"
        )

    def supervise(self, bind: str, child_env: dict) -> None:
        cli = [sys.executable, "-m", "mailmarketer.cli"]
        children: dict[str, subprocess.Popen] = {}
        self.stdout.flush()  # what we printed comes before what the children print
        for name, args in (("web server", ["web", "--bind", bind]), ("worker", ["worker"])):
            try:
                children[name] = subprocess.Popen([*cli, *args], env=child_env)
            except OSError as exc:
                self.stop(children)
                raise CommandError(f"could not start the {name}: {exc}") from None
        pids = ", ".join(f"{name} pid {p.pid}" for name, p in children.items())
        self.stdout.write(
            f"Mail Marketer is running at {settings.BASE_URL}/ ({pids}). Ctrl-C stops it."
        )
        self.stdout.flush()

        died = None
        while not self.signals and died is None:
            time.sleep(POLL)
            died = next((name for name, p in children.items() if p.poll() is not None), None)

        if died is not None:
            code = children[died].returncode
            self.stderr.write(f"The {died} exited with status {code}; stopping the rest.")
            self.stop(children)
            raise CommandError(f"the {died} stopped unexpectedly (status {code})", returncode=1)

        name = signal.Signals(self.signals[0]).name
        self.stdout.write(f"{name} received: stopping the web server and the worker...")
        self.stdout.flush()
        if not self.stop(children):
            raise CommandError(
                f"had to kill what did not stop within {STOP_TIMEOUT:.0f} s", returncode=1
            )
        self.stdout.write("Stopped.")

    def stop(self, children: dict) -> bool:
        """SIGTERM to each child still running, then wait; kill what is left after STOP_TIMEOUT
        (or at once on another signal). True when nothing had to be killed."""
        seen = len(self.signals)
        for proc in children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(p.poll() is None for p in children.values()):
            if time.monotonic() > deadline or len(self.signals) > seen:
                break
            time.sleep(0.05)
        clean = True
        for name, proc in children.items():
            if proc.poll() is None:
                clean = False
                self.stderr.write(f"The {name} (pid {proc.pid}) did not stop: killing it.")
                proc.kill()
                proc.wait(timeout=5)
        return clean
