"""The bounce receiver as it runs: `mailmarketer bouncer` processes behind a real Postfix on
127.0.0.1 (Debian's package, its own configuration in a temporary directory), which makes real
DSNs (an `error:5.1.1` transport for the recipients' domain) and hands them to the bouncer
through transport_maps, as docs/bounces.md tells an operator to. Every process is bounded in
time and stopped by its pid."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
import time

import pytest
from django.db import connection

from mailmarketer.delivery.bounces import testing
from mailmarketer.delivery.testing import postfix
from mailmarketer.lib.tests.processes import MAILMARKETER, cli_env, free_port, stop, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not postfix.available() and os.environ.get("CI") != "true",
        reason="Debian's postfix package is not installed (make postfix, as root)",
    ),
]

DOMAIN = "bounce.acme.test"
ROWS = 60
KILL_ROWS = 300


class Bouncer:
    def __init__(self, tmp_path, database_url):
        self.database_url = database_url
        self.dir = tmp_path
        self.port = free_port()
        self.env = cli_env(
            None,
            MM_DATA_DIR=str(tmp_path),
            MM_DATABASE_URL=database_url,
            MM_SECRET_KEY="bounce-process-test-secret-key-" + "s" * 30,
            MM_ENCRYPTION_KEY="dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdDE=",
            MM_BASE_URL="http://127.0.0.1:8000",
            MM_BOUNCER_DOMAINS=DOMAIN,
            MM_LOG_LEVEL="WARNING",
        )
        self.procs: list[subprocess.Popen] = []

    def run(self, *args) -> str:
        done = subprocess.run(
            args,
            env=self.env,
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    def seed(self, rows: int = ROWS) -> list[dict]:
        self.run(MAILMARKETER, "migrate")
        out = self.run(
            sys.executable,
            "-m",
            "mailmarketer.delivery.bounces.testing",
            "seed",
            "--rows",
            str(rows),
            "--domain",
            "dead.example",
        )
        return [json.loads(line) for line in out.splitlines()]

    def report(self) -> dict:
        return json.loads(
            self.run(sys.executable, "-m", "mailmarketer.delivery.bounces.testing", "report")
        )

    def start(self) -> subprocess.Popen:
        proc = subprocess.Popen(
            [MAILMARKETER, "bouncer", "--listen", f"127.0.0.1:{self.port}"],
            env=self.env,
            cwd=self.dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        line = proc.stdout.readline()
        assert line.startswith("bouncer listening"), line + proc.stderr.read()[-2000:]
        return proc

    def applied(self) -> int:
        return testing.count_rows(self.database_url)

    def close(self):
        for proc in self.procs:
            stop(proc)


@pytest.fixture
def bouncer(tmp_path):
    with testing.process_database(tmp_path, connection) as url:
        b = Bouncer(tmp_path, url)
        yield b
        b.close()


def _mta(bouncer_port: int):
    transport = (
        f"{DOMAIN} smtp:[127.0.0.1]:{bouncer_port}\n"
        "dead.example error:5.1.1 User unknown in virtual mailbox table\n"
    )
    return postfix.PostfixRelay(
        sink_port=bouncer_port,
        main_cf_extra=(
            "transport_maps = texthash:{dir}/transport\n"
            "smtpd_reject_unlisted_recipient = no\n"
            "bounce_queue_lifetime = 1h\n"
            "smtp_connect_timeout = 2s\n"
        ),
    ), transport


def _send(mta_port: int, rows: list[dict], forged: int = 0) -> None:
    with smtplib.SMTP("127.0.0.1", mta_port, timeout=30) as client:
        for row in rows:
            client.sendmail(
                f"bounces+{row['token']}@{DOMAIN}",
                [row["email"]],
                f"From: news@acme.test\r\nTo: {row['email']}\r\nSubject: Autumn news\r\n"
                f"Message-ID: <{row['id']}.x@acme.test>\r\n\r\nHello.\r\n",
            )
        for n in range(forged):
            client.sendmail(
                f"bounces+{rows[n]['id']}-aaaaaaaaaaaaaaaa@{DOMAIN}",
                [f"forged{n}@dead.example"],
                "Subject: forged\r\n\r\nA token nobody signed.\r\n",
            )


def test_it_applies_real_postfix_dsns_handed_over_by_transport_maps(bouncer):
    rows = bouncer.seed()
    bouncer.start()
    relay, transport = _mta(bouncer.port)
    (relay.dir / "transport").write_text(transport)
    with relay as mta:
        _send(mta.port, rows, forged=3)
        found = wait_for(
            lambda: (r := bouncer.report())["bounces"] >= ROWS + 3 and r,
            120,
            interval=0.5,
            what="every DSN to be applied",
        )
    assert found["suppressed"] == ROWS
    assert found["bounced_rows"] == ROWS
    assert found["outcomes"] == {"suppressed": ROWS, "unmatched": 3}


def test_it_loses_nothing_when_the_bouncer_is_killed_mid_stream(bouncer):
    rows = bouncer.seed(KILL_ROWS)
    first = bouncer.start()
    relay, transport = _mta(bouncer.port)
    (relay.dir / "transport").write_text(transport)
    with relay as mta:
        _send(mta.port, rows)
        wait_for(
            lambda: bouncer.applied() >= KILL_ROWS // 10,
            120,
            interval=0.05,
            what="a tenth of the DSNs to be applied",
        )
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        applied_at_kill = bouncer.applied()
        time.sleep(1)
        bouncer.start()
        wait_for(
            lambda: bouncer.applied() >= KILL_ROWS,
            240,
            interval=0.5,
            what="every DSN to be applied after the restart",
        )
        time.sleep(2)  # anything applied twice would show up now
        found = bouncer.report()
    assert applied_at_kill < KILL_ROWS, "the kill came after the end: nothing was tested"
    assert found["bounces"] == KILL_ROWS  # each applied once, none lost
    assert found["suppressed"] == KILL_ROWS and found["bounced_rows"] == KILL_ROWS
