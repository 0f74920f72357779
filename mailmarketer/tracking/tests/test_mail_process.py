"""A real `mailmarketer web` killed with SIGKILL in the middle of a stream of clicks and opens:
every hit it answered (302, or the pixel) was in the spool before the answer, so once the worker
has ingested the spool (the dead process's file included), every one is an event, once.

Runs the installed script on its own SQLite database in a temporary data directory, on
127.0.0.1, with bounded waits; the server (gunicorn's master and its workers, in a process
group of their own) is killed by its own group id.
"""

from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
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

PEOPLE = 4000
SETUP = f"""
from datetime import timedelta
from django.utils.timezone import now
from mailmarketer.accounts.models import Workspace
from mailmarketer.audience.links import click_token, open_token
from mailmarketer.audience.models import Subscriber
from mailmarketer.campaigns.models import Campaign, CampaignLink
from mailmarketer.delivery.models import Delivery
ws = Workspace.objects.create(name="Acme", slug="acme", postal_address="1 Road")
campaign = Campaign.objects.create(workspace=ws, name="News", subject="Hi", status="finished",
                                   started_at=now())
link = CampaignLink.objects.create(campaign=campaign, url="https://acme.test/post", position=0)
Subscriber.objects.bulk_create(Subscriber(workspace=ws, email=f"p{{i}}@acme.test")
                               for i in range({PEOPLE}))
sent = now() - timedelta(hours=1)
Delivery.objects.bulk_create(
    Delivery(workspace=ws, campaign=campaign, subscriber=p, status="sent", sent_at=sent)
    for p in Subscriber.objects.filter(workspace=ws))
for pk in Delivery.objects.order_by("pk").values_list("pk", flat=True):
    print(pk, click_token(pk, link.pk), open_token(pk))
"""
INGEST = "from mailmarketer.tracking.mail_ingest import ingest_all; ingest_all()"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


opener = urllib.request.build_opener(NoRedirect)


def hit(base: str, path: str) -> int:
    request = urllib.request.Request(base + path, headers={"User-Agent": UA})
    try:
        with opener.open(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as answer:  # the 302, which this opener does not follow
        return answer.code


def test_it_keeps_every_answered_click_and_open_when_the_web_process_is_killed(tmp_path):
    data = tmp_path / "var"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = cli_env(data)
    assert run_cli("migrate", env=env, cwd=tmp_path).returncode == 0
    made = run_cli("manage", "shell", "-c", SETUP, env=env, cwd=tmp_path, timeout=120)
    assert made.returncode == 0, made.stderr
    # The shell may say what it imported first; the tokens are the lines of three fields.
    tokens = [
        fields for fields in map(str.split, made.stdout.splitlines())
        if len(fields) == 3 and fields[0].isdigit()
    ]  # fmt: skip
    assert len(tokens) == PEOPLE
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
    answered: list[tuple[str, int]] = []  # (kind, ledger id)
    stop = threading.Event()

    def stream(offset: int) -> None:
        for number in range(offset, PEOPLE, 4):
            if stop.is_set():
                return
            pk, click, pixel = tokens[number]
            try:
                if hit(base, f"/t/c/{click}") == 302:
                    answered.append(("click", int(pk)))
                if hit(base, f"/t/o/{pixel}") == 200:
                    answered.append(("open", int(pk)))
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                if stop.is_set():
                    return
                time.sleep(0.05)

    try:
        kill_web_mid_stream(
            proc,
            base,
            stream,
            stop,
            until=lambda: len(answered) >= 400,
            timeout=60,
            what="400 answered hits",
        )
    finally:
        log.close()

    ingested = run_cli("manage", "shell", "-c", INGEST, env=env, cwd=tmp_path, timeout=120)
    assert ingested.returncode == 0, ingested.stderr
    assert not list((data / "spool").glob("mail-*")), "the spool was not emptied"
    with sqlite3.connect(data / "mailmarketer.sqlite3") as db:
        stored = db.execute("SELECT kind, delivery_id FROM tracking_emailevent").fetchall()
    assert len(stored) == len(set(stored))  # nothing twice
    missing = set(answered) - set(stored)
    assert len(answered) >= 400 and not missing, f"{len(missing)} answered hits lost"
