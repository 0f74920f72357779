"""JSON logs (MM_LOG_FORMAT=json): one object a line, with the request id and the workspace,
and no addresses; the request id travels from the proxy to the response."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import urllib.request

import pytest
from django.test import Client

from mailmarketer.lib.logs import (
    ContextFilter,
    JsonFormatter,
    RequestContextMiddleware,
    mask_addresses,
    request_id_var,
    workspace_var,
)
from mailmarketer.lib.tests.processes import MAILMARKETER, cli_env, free_port, stop, wait_for


def _record(message, *args, exc_info=None, **extra):
    record = logging.LogRecord(
        "mailmarketer.test", logging.WARNING, __file__, 1, message, args, exc_info
    )
    for key, value in extra.items():
        setattr(record, key, value)
    ContextFilter().filter(record)
    return record


def test_it_writes_one_json_object_a_line_with_the_context():
    id_token, ws_token = request_id_var.set("req-12345678"), workspace_var.set("acme")
    try:
        line = JsonFormatter().format(_record("sent %d messages", 3, campaign=7))
    finally:
        request_id_var.reset(id_token)
        workspace_var.reset(ws_token)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["event"] == "sent 3 messages"
    assert (entry["request_id"], entry["workspace"], entry["campaign"]) == (
        "req-12345678",
        "acme",
        7,
    )
    assert entry["level"] == "WARNING" and entry["logger"] == "mailmarketer.test"


def test_it_masks_addresses_in_messages_fields_and_tracebacks():
    try:
        raise ValueError("550 5.1.1 <ann.smith+news@example.com>: no such user")
    except ValueError:
        record = _record(
            "relay said %s",
            "bob@example.org gone",
            exc_info=sys.exc_info(),
            reply="x carol@example.net",
        )
    line = JsonFormatter().format(record)
    assert "ann.smith" not in line and "bob@" not in line and "carol@" not in line
    entry = json.loads(line)
    assert entry["event"] == "relay said ***@example.org gone"
    assert "***@example.com" in entry["exception"]
    assert entry["reply"] == "x ***@example.net"


def test_it_leaves_text_without_addresses_alone():
    assert mask_addresses("cannot talk to 127.0.0.1:2525: [Errno 111]") == (
        "cannot talk to 127.0.0.1:2525: [Errno 111]"
    )


@pytest.mark.django_db
def test_it_answers_with_the_proxys_request_id_or_a_new_one():
    client = Client()
    echoed = client.get("/healthz", HTTP_X_REQUEST_ID="proxy-abc-123")
    assert echoed["X-Request-Id"] == "proxy-abc-123"
    made = client.get("/healthz", HTTP_X_REQUEST_ID="<script>alert(1)</script>")
    assert re.fullmatch(r"[0-9a-f]{32}", made["X-Request-Id"])


@pytest.mark.django_db
def test_it_logs_one_request_event_with_the_route_not_the_path(settings, caplog):
    settings.LOG_FORMAT = "json"
    seen = []
    middleware = RequestContextMiddleware(lambda request: seen.append(request) or _Response())
    request = _Request("/f/acme/news/confirm/SECRET-TOKEN/")
    with caplog.at_level(logging.INFO, logger="mailmarketer.http"):
        middleware(request)
    (event,) = [r for r in caplog.records if r.name == "mailmarketer.http"]
    assert event.route == "/f/<slug:ws>/<slug:form>/confirm/<str:token>/"
    assert event.status == 200 and event.method == "GET"
    assert "SECRET-TOKEN" not in JsonFormatter().format(event)


class _Response(dict):
    status_code = 200


class _Match:
    route = "f/<slug:ws>/<slug:form>/confirm/<str:token>/"


class _Request:
    method = "GET"

    def __init__(self, path):
        self.path = path
        self.headers = {}
        self.resolver_match = _Match()


@pytest.mark.slow
def test_the_web_server_logs_only_json_lines_with_request_ids(tmp_path):
    port = free_port()
    err = tmp_path / "web.err"
    with err.open("w") as errors:
        server = subprocess.Popen(
            [MAILMARKETER, "web", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
            env=cli_env(tmp_path / "var", MM_LOG_FORMAT="json"),
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
    try:

        def answered():
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/healthz", headers={"X-Request-Id": "probe-0001"}
            )
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_for(answered, 60, what="the web server")
        wait_for(lambda: "probe-0001" in err.read_text(), 10, what="the request event")
    finally:
        stop(server)
    lines = [line for line in err.read_text().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is JSON
    assert any(e["logger"] == "gunicorn.error" for e in entries)
    (probe,) = [e for e in entries if e["request_id"] == "probe-0001"]
    assert probe["route"] == "/healthz" and probe["status"] == 200
    assert "127.0.0.1 - -" not in err.read_text()  # no gunicorn access line with the address
