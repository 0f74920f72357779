"""Logs an operator's tools can read: with MM_LOG_FORMAT=json every record is one JSON object on
one line, carrying the request id and the workspace of the request (or job) it belongs to, and
never personal data.

- RequestContextMiddleware gives each request an id (the proxy's X-Request-Id when it is a sane
  token, else a new one), answers with it, names the workspace from the URL (`<ws>`), and in
  JSON mode logs one "request" event per request with the route pattern (never the path: paths
  carry tokens), the status and the duration. Those events replace gunicorn's access log,
  whose lines hold the client's address and the query string. The same middleware times the
  request for /metrics (lib/metrics.py).
- ContextFilter puts the request id and the workspace on every record, wherever it is logged.
- JsonFormatter writes the line. Addresses in a message are masked (`***@example.com`): a
  message may quote a relay's reply or an exception that names a recipient, and a log is
  shipped to places the audit log is not.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime

from . import metrics

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
workspace_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "workspace", default=None
)

_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@(?=[A-Za-z0-9-]+\.)")

access_log = logging.getLogger("mailmarketer.http")


def mask_addresses(text: str) -> str:
    return _ADDRESS.sub("***@", text)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.workspace = workspace_var.get()
        return True


# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
    "workspace",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": mask_addresses(record.getMessage()),
            "request_id": getattr(record, "request_id", None),
            "workspace": getattr(record, "workspace", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = mask_addresses(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = mask_addresses(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


class RequestContextMiddleware:
    def __init__(self, get_response):
        from django.conf import settings

        self.get_response = get_response
        self.log_requests = settings.LOG_FORMAT == "json"

    def __call__(self, request):
        incoming = request.headers.get("X-Request-Id", "")
        request_id = incoming if _INCOMING_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        id_token = request_id_var.set(request_id)
        ws_token = workspace_var.set(None)
        started = time.monotonic()
        try:
            response = self.get_response(request)
            response["X-Request-Id"] = request_id
            seconds = time.monotonic() - started
            match = getattr(request, "resolver_match", None)
            route = "/" + match.route if match else None
            metrics.observe_request(route, request.method, response.status_code, seconds)
            if self.log_requests:
                access_log.info(
                    "request",
                    extra={
                        "method": request.method,
                        "route": route,
                        "status": response.status_code,
                        "duration_ms": round(seconds * 1000, 1),
                    },
                )
            return response
        finally:
            request_id_var.reset(id_token)
            workspace_var.reset(ws_token)

    def process_view(self, request, view_func, view_args, view_kwargs):
        slug = view_kwargs.get("ws")
        if isinstance(slug, str) and _SLUG.match(slug):
            workspace_var.set(slug)
