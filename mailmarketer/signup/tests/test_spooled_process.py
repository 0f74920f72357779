"""A real `mailmarketer web` killed with SIGKILL in the middle of a stream of sign-ups: every
sign-up it answered with 200 is stored afterwards, once, with its consent record, when the
worker's duty has ingested the spool (the dead process's file included).

Like the other real-process tests, it runs the installed script on its own SQLite database in
a temporary data directory, on 127.0.0.1, with bounded waits; the server (gunicorn's master and
its workers, in a process group of their own) is killed by its own group id.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import urllib.error
import urllib.request

import pytest

from mailmarketer.lib.tests.processes import (
    MAILMARKETER,
    cli_env,
    free_port,
    kill_web_mid_stream,
    run_cli,
)

pytestmark = pytest.mark.slow

# The workspace's proof of work is switched off here: the server's key is its own (made in its
# data directory), and what this test is about is the spool, not the check.
SETUP = """
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import Workspace
from mailmarketer.audience.actions import do_create_list
from mailmarketer.signup.actions import do_create_form
from mailmarketer.signup.models_altcha import FormProtection
from mailmarketer.signup.tokens import EMBED, make_form_token
actor = Actor.system("test")
ws = Workspace.objects.create(name="Acme", slug="acme")
FormProtection.objects.create(workspace=ws, altcha_required=False)
news = do_create_list(ws, name="News", slug="news", actor=actor)
form = do_create_form(ws, name="News", slug="news", title="News", lists=[news],
                      notice_text="Send me the news.", actor=actor)
print(make_form_token(form.pk, EMBED))
"""
INGEST = "from mailmarketer.signup.spooled import ingest_all; print(ingest_all())"


def email_of(number: int) -> str:
    return f"person{number}@example.com"


def post(base: str, token: str, number: int) -> int:
    body = {"form_token": token, "email": email_of(number), "consent": True}
    request = urllib.request.Request(
        f"{base}/f/acme/news.json",
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            # One client per sign-up (the per-IP limit is not what this is about).
            "X-Forwarded-For": f"198.18.{number // 250}.{number % 250 + 1}",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status


def test_every_answered_sign_up_is_stored_once_when_the_web_process_is_killed(tmp_path):
    data = tmp_path / "var"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = cli_env(data, MM_BEHIND_PROXY="true")
    assert run_cli("migrate", env=env, cwd=tmp_path, timeout=300).returncode == 0
    made = run_cli("manage", "shell", "-c", SETUP, env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    log = (tmp_path / "web.log").open("w")
    proc = subprocess.Popen(
        [MAILMARKETER, "web", "--bind", f"127.0.0.1:{port}"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the master and its workers
    )
    acknowledged: list[int] = []
    stop = threading.Event()

    def stream(offset: int) -> None:
        number = offset
        while not stop.is_set():
            try:
                if post(base, token, number) == 200:
                    acknowledged.append(number)
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                if stop.is_set():
                    return
            number += 4

    try:
        kill_web_mid_stream(
            proc,
            base,
            stream,
            stop,
            until=lambda: len(acknowledged) >= 200,
            timeout=90,
            what="200 answered sign-ups",
        )
    finally:
        log.close()

    assert list((data / "spool").glob("signup-*")), "nothing was spooled"
    with sqlite3.connect(data / "mailmarketer.sqlite3") as db:
        (stored_before,) = db.execute("SELECT COUNT(*) FROM signup_submission").fetchone()
    assert stored_before == 0  # the answers waited on the spool, not on the database
    ingested = run_cli("manage", "shell", "-c", INGEST, env=env, cwd=tmp_path, timeout=300)
    assert ingested.returncode == 0, ingested.stderr
    assert not list((data / "spool").glob("signup-*")), "the spool was not emptied"
    with sqlite3.connect(data / "mailmarketer.sqlite3") as db:
        emails = [e for (e,) in db.execute("SELECT email FROM audience_subscriber")]
        (submissions,) = db.execute("SELECT COUNT(*) FROM signup_submission").fetchone()
        (consents,) = db.execute(
            "SELECT COUNT(DISTINCT subscriber_id) FROM audience_consentrecord"
        ).fetchone()
    assert len(emails) == len(set(emails)) == submissions == consents  # nothing twice
    missing = {email_of(n) for n in acknowledged} - set(emails)
    assert len(acknowledged) >= 200 and not missing, f"{len(missing)} answered sign-ups lost"
