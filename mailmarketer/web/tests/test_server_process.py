"""The real server processes, started the way an operator starts them.

These tests run the installed `mailmarketer` script, which always uses its own SQLite database
in a temporary data directory, whichever database the rest of the suite runs on (so they run,
identically, in both passes of tools/test.sh). Everything listens on 127.0.0.1 on a free port;
every wait is bounded; every process is stopped by its own pid.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import secrets
import signal
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mailmarketer.lib.tests.processes import (
    MAILMARKETER,
    alive,
    children_of,
    cli_env,
    free_port,
    run_cli,
    stop,
    wait_for,
)

pytestmark = pytest.mark.slow

START_TIMEOUT = 60


def fetch(url: str, headers: dict | None = None, context=None):
    """(status, headers, body) of a GET; an HTTP error status is an answer, not an exception."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def answering(url: str, proc: subprocess.Popen, log=None, context=None):
    """A predicate for wait_for: the health check answers; fails at once if the process died."""

    def check():
        if proc.poll() is not None:
            output = log.read_text() if log else ""
            raise AssertionError(f"the process exited with {proc.returncode}:\n{output}")
        try:
            return fetch(url, context=context)[0] == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    return check


def test_it_runs_the_web_server_and_a_worker_and_stops_both_on_sigint(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = cli_env(tmp_path / "var", PORT=str(port))
    log = tmp_path / "run.log"
    with log.open("w") as output:
        proc = subprocess.Popen(
            [MAILMARKETER, "run"],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(answering(f"{base}/healthz", proc, log), START_TIMEOUT, what="/healthz")
        status, _, body = fetch(f"{base}/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok"})

        printed = log.read_text()
        setup = re.search(rf"{re.escape(base)}/setup/[^/\s]+/", printed)
        assert setup, f"no setup link for port {port} in:\n{printed}"
        assert fetch(setup.group(0))[0] == 200

        status, headers, css = fetch(f"{base}/static/web/app.css")
        assert status == 200 and headers["Content-Type"].startswith("text/css") and css

        (tmp_path / "pw").write_text("correct horse battery staple\n")
        created = run_cli(
            "createuser",
            "--email=owner@example.test",
            "--workspace=acme",
            "--role=owner",
            "--password-file=pw",
            env=env,
            cwd=tmp_path,
        )
        assert created.returncode == 0, created.stderr
        token = run_cli(
            "token",
            "create",
            "--workspace=acme",
            "--role=marketer",
            "--name=t",
            env=env,
            cwd=tmp_path,
        )
        assert token.returncode == 0, token.stderr
        bearer = {"Authorization": f"Bearer {token.stdout.strip()}"}
        status, _, body = fetch(f"{base}/api/v1/me", headers=bearer)
        assert status == 200, body
        assert json.loads(body)["workspace"]["slug"] == "acme"

        pids = re.search(r"web server pid (\d+), worker pid (\d+)", printed)
        assert pids, printed
        web, worker = int(pids.group(1)), int(pids.group(2))
        gunicorn_workers = children_of(web)
        assert gunicorn_workers, "gunicorn has no worker processes"
        assert alive(web) and alive(worker)

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0, log.read_text()
    finally:
        stop(proc)

    assert [pid for pid in (web, worker, *gunicorn_workers) if alive(pid)] == []
    assert "Stopped." in log.read_text()


def test_it_stops_the_web_server_and_fails_when_the_worker_dies(tmp_path):
    port = free_port()
    env = cli_env(tmp_path / "var", PORT=str(port))
    log = tmp_path / "run.log"
    with log.open("w") as output:
        proc = subprocess.Popen(
            [MAILMARKETER, "run"],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        wait_for(answering(url, proc, log), START_TIMEOUT, what="/healthz")
        pids = re.search(r"web server pid (\d+), worker pid (\d+)", log.read_text())
        web, worker = int(pids.group(1)), int(pids.group(2))

        os.kill(worker, signal.SIGKILL)

        assert proc.wait(timeout=15) == 1
    finally:
        stop(proc)

    assert not alive(web)
    assert "the worker stopped unexpectedly (status -9)" in log.read_text()


def test_it_refuses_to_serve_without_a_secret_key_unless_debug(tmp_path):
    env = cli_env(None, MM_DATA_DIR=str(tmp_path / "var"), PORT=str(free_port()))

    result = run_cli("web", env=env, cwd=tmp_path, timeout=30)

    assert result.returncode == 2
    assert result.stderr.startswith("mailmarketer: configuration error: MM_SECRET_KEY: ")


def self_signed(tmp_path):
    """A certificate for 127.0.0.1 and its key, made here, trusted by nothing but this test."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_it_serves_https_itself_with_a_certificate_and_debug_off(tmp_path):
    cert, key = self_signed(tmp_path)
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    env = cli_env(
        None,
        MM_DATA_DIR=str(tmp_path / "var"),
        MM_SECRET_KEY=secrets.token_urlsafe(40),
        MM_TLS_CERT=str(cert),
        MM_TLS_KEY=str(key),
        MM_BASE_URL=base,
        PORT=str(port),
    )
    trust = ssl.create_default_context(cafile=str(cert))
    log = tmp_path / "web.log"
    with log.open("w") as output:
        proc = subprocess.Popen(
            [MAILMARKETER, "web", "--workers", "1"],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(answering(f"{base}/healthz", proc, log, trust), START_TIMEOUT, what="/healthz")

        status, headers, body = fetch(f"{base}/healthz", context=trust)
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        assert headers["Strict-Transport-Security"].startswith("max-age=")
        # Static files are served by the application itself, with DEBUG off too.
        status, headers, css = fetch(f"{base}/static/web/app.css", context=trust)
        assert status == 200 and headers["Content-Type"].startswith("text/css") and css

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log.read_text()
    finally:
        stop(proc)
