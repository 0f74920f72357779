"""`mailmarketer web`: the web server, gunicorn serving mailmarketer.wsgi.

gunicorn runs in this process (its Python API), so the configuration errors are ours to report
before it starts. Listens on 127.0.0.1:$PORT by default (a reverse proxy or `--bind` opens it
up); serves HTTPS itself when MM_TLS_CERT and MM_TLS_KEY are set. The access log goes to
standard output, everything else to standard error.

Signals are gunicorn's: SIGTERM stops gracefully (requests in flight finish, up to
GRACEFUL_TIMEOUT seconds), SIGINT (Ctrl-C) and SIGQUIT stop at once, SIGHUP reloads the
workers; the process exits 0 after a stop.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from gunicorn.app.base import BaseApplication

from mailmarketer.lib import metrics
from mailmarketer.lib.env import env_int
from mailmarketer.web.cli_args import COMMANDS, web_arguments

GRACEFUL_TIMEOUT = 10


def default_bind() -> str:
    return f"127.0.0.1:{env_int('PORT', 8000, minimum=1, maximum=65535)}"


def split_bind(bind: str) -> tuple[str, int]:
    """('127.0.0.1', 8000) from '127.0.0.1:8000' or '[::1]:8000'; a clear error otherwise."""
    host, sep, port = bind.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CommandError(f"--bind {bind!r}: expected HOST:PORT, for example 127.0.0.1:8000")
    return host, int(port)


def gunicorn_options(bind: str, workers: int, threads: int) -> dict:
    options = {
        "bind": [bind],
        "workers": workers,
        # Threads let one slow client (or a long export download) hold one thread, not a whole
        # process; Django is thread-safe and opens a database connection per thread.
        "worker_class": "gthread",
        "threads": threads,
        # In JSON mode the request events of lib/logs.py replace the access log (its lines
        # hold the client's address and the query string) and gunicorn logs through our
        # formatter.
        "accesslog": None if settings.LOG_FORMAT == "json" else "-",
        "errorlog": "-",
        "loglevel": settings.LOG_LEVEL.lower(),
        "graceful_timeout": GRACEFUL_TIMEOUT,
        "proc_name": "mailmarketer-web",
        # Whether X-Forwarded-Proto is believed is Django's decision (MM_BEHIND_PROXY sets
        # SECURE_PROXY_SSL_HEADER), so gunicorn believes no one.
        "forwarded_allow_ips": "",
        # gunicorn's control socket defaults to one path per user, shared by every instance;
        # nothing here uses it.
        "control_socket_disable": True,
    }
    if settings.LOG_FORMAT == "json":
        options["logconfig_dict"] = settings.LOGGING
    if settings.TLS_CERT:
        options["certfile"] = settings.TLS_CERT
        options["keyfile"] = settings.TLS_KEY
    return options


class WebServer(BaseApplication):
    def __init__(self, options: dict):
        self.options = options
        super().__init__(prog="mailmarketer web")

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from mailmarketer.wsgi import application

        return application


class Command(BaseCommand):
    help = COMMANDS["web"][0]

    def add_arguments(self, parser):
        web_arguments(parser)

    def handle(self, *, bind, workers, threads, **options):
        bind = bind or default_bind()
        split_bind(bind)
        if workers is None:
            workers = env_int("MM_WEB_WORKERS", 2, minimum=1, maximum=64)
        if threads is None:
            threads = env_int("MM_WEB_THREADS", 4, minimum=1, maximum=64)
        scheme = "https" if settings.TLS_CERT else "http"
        self.stdout.write(
            f"Web server on {scheme}://{bind} ({workers} processes x {threads} threads)"
        )
        self.stdout.flush()
        metrics.forget_dead_processes()
        WebServer(gunicorn_options(bind, workers, threads)).run()
