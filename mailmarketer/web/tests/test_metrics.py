"""/metrics (issue 12): Prometheus text, behind a bearer token, adding this host's processes'
counters (request latency by route, worker duties) to what the database knows (ledger rows by
status and relay, queue depth per campaign, lease expiries, import rows)."""

from __future__ import annotations

import os
import subprocess
import urllib.request

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from mailmarketer.campaigns.models import Campaign
from mailmarketer.delivery.models import Delivery
from mailmarketer.lib import metrics
from mailmarketer.lib.tests.processes import (
    MAILMARKETER,
    cli_env,
    free_port,
    run_cli,
    stop,
    wait_for,
)
from mailmarketer.lib.worker import Worker
from mailmarketer.testing import launch, ledger_rows, relay

TOKEN = "metrics-token-for-tests-0123456789"
S = Delivery.Status


def _scrape(client=None, token=TOKEN):
    client = client or Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.get("/metrics", **headers)


def _samples(response) -> dict:
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture
def on(settings):
    settings.METRICS_TOKEN = TOKEN


@pytest.mark.django_db
def test_it_is_not_there_without_a_token_setting(settings):
    settings.METRICS_TOKEN = None
    assert _scrape().status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x"])
def test_it_refuses_a_missing_or_wrong_token(on, token):
    response = _scrape(token=token)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"mailmarketer_" not in response.content


def test_it_counts_ledger_rows_by_status_and_relay_and_the_queue_per_campaign(on, ws, news, people):
    main = relay(ws)
    running = launch(ws, [news])
    ledger_rows(running, people, [S.SENT, S.SENT, S.QUEUED], server=main)
    finished = launch(ws, [news], status=Campaign.Status.FINISHED, name="Done")
    ledger_rows(finished, people[:1], [S.FAILED], server=main)
    found = _samples(_scrape())
    relay_label = f"{ws.slug}/{main.name}"
    assert found[("mailmarketer_deliveries", (("relay", relay_label), ("status", "sent")))] == 2
    assert found[("mailmarketer_deliveries", (("relay", relay_label), ("status", "failed")))] == 1
    queue = (
        ("campaign", str(running.pk)),
        ("campaign_status", "running"),
        ("workspace", ws.slug),
    )
    assert found[("mailmarketer_queue_depth", queue)] == 1
    assert not any(
        name == "mailmarketer_queue_depth" and ("campaign", str(finished.pk)) in labels
        for name, labels in found
    )


@pytest.mark.django_db
def test_it_times_requests_by_route_pattern_not_path(on):
    client = Client()
    before = _samples(_scrape(client))
    key = (
        "mailmarketer_http_request_duration_seconds_count",
        (("method", "GET"), ("route", "/f/<slug:ws>/<slug:form_slug>")),
    )
    client.get("/f/acme/secret-looking-slug")
    client.get("/f/acme/another-one")
    after = _samples(_scrape(client))
    assert after[key] - before.get(key, 0) == 2
    assert "secret-looking-slug" not in _scrape(client).content.decode()


@pytest.mark.django_db
def test_it_times_worker_duties_that_found_work_and_counts_failures(on):
    def send_batch_one():
        return True

    def broken_one():
        raise RuntimeError("boom")

    before = _samples(_scrape())
    Worker(duties=[send_batch_one, broken_one]).run_round()
    after = _samples(_scrape())
    here = f"{__name__}.test_it_times_worker_duties_that_found_work_and_counts_failures.<locals>"
    done = ("mailmarketer_job_duration_seconds_count", (("duty", f"{here}.send_batch_one"),))
    failed = ("mailmarketer_job_failures_total", (("duty", f"{here}.broken_one"),))
    assert after[done] - before.get(done, 0) == 1
    assert after[failed] - before.get(failed, 0) == 1


def test_it_forgets_the_files_of_processes_that_are_gone(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    gone = subprocess.Popen(["true"])
    gone.wait()
    (tmp_path / f"histogram_{gone.pid}.db").write_bytes(b"x")
    mine = tmp_path / f"histogram_{os.getpid()}.db"
    mine.write_bytes(b"x")
    assert metrics.forget_dead_processes() == 1
    assert mine.exists()


@pytest.mark.slow
def test_it_adds_up_every_web_process_of_the_host(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = cli_env(tmp_path / "var", MM_METRICS_TOKEN=TOKEN)
    assert run_cli("migrate", env=env, cwd=tmp_path).returncode == 0
    server = subprocess.Popen(
        [MAILMARKETER, "web", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "1"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def get(path, headers=None):
        request = urllib.request.Request(base + path, headers=headers or {})
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.read().decode()

    def up():
        try:
            return get("/healthz")
        except OSError:
            return False

    try:
        wait_for(up, 60, what="the web server")
        for _ in range(40):
            get("/healthz")
        text = get("/metrics", {"Authorization": f"Bearer {TOKEN}"})
    finally:
        stop(server)
    counts = {
        sample.labels["status"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "mailmarketer_http_requests_total"
        and sample.labels.get("route") == "/healthz"
    }
    # Every probe, whichever of the two processes answered it (41 with the first one that
    # found the server up, more if the wait probed more than once).
    assert counts["2xx"] >= 41
