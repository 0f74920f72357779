import threading
from datetime import UTC, datetime

import pytest
from django.db import connection, connections

from mailmarketer.delivery import ratelimit
from mailmarketer.delivery.models import SendWindow, SmtpServer


@pytest.fixture
def server(personas):
    return SmtpServer.objects.create(
        workspace=personas.acme,
        name="Relay",
        host="127.0.0.1",
        port=25,
        tls_mode="none",
        messages_per_second=0,
        hourly_cap=0,
        daily_cap=0,
    )


def test_it_grants_everything_without_limits(server):
    assert ratelimit.reserve(server, 500) == (500, None)
    assert not SendWindow.objects.exists()


def test_it_grants_what_the_hourly_cap_leaves_and_says_when_to_retry(server):
    server.hourly_cap = 250
    server.save()
    assert ratelimit.reserve(server, 200) == (200, None)
    granted, retry_at = ratelimit.reserve(server, 200)
    assert granted == 50
    assert retry_at == ratelimit.window_start("h", retry_at) and retry_at.minute == 0
    assert ratelimit.reserve(server, 10)[0] == 0
    assert SendWindow.objects.get(scope="h").count == 250


def test_it_holds_the_tightest_of_several_limits(server):
    server.messages_per_second, server.daily_cap = 1000, 30
    server.save()
    assert ratelimit.reserve(server, 100)[0] == 30
    assert {w.scope: w.count for w in SendWindow.objects.all()} == {"s": 30, "d": 30}


def test_it_aligns_windows_to_utc():
    moment = datetime(2026, 11, 25, 14, 37, 21, 500000, tzinfo=UTC)
    assert ratelimit.window_start("s", moment) == datetime(2026, 11, 25, 14, 37, 21, tzinfo=UTC)
    assert ratelimit.window_start("h", moment) == datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
    assert ratelimit.window_start("d", moment) == datetime(2026, 11, 25, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers: PostgreSQL")
def test_it_never_overshoots_with_concurrent_workers(personas):
    server = SmtpServer.objects.create(
        workspace=personas.acme,
        name="Relay",
        host="127.0.0.1",
        port=25,
        tls_mode="none",
        daily_cap=1000,
    )
    granted: list[int] = []
    barrier = threading.Barrier(4)

    def worker():
        barrier.wait()
        for _ in range(20):
            granted.append(ratelimit.reserve(server, 37)[0])
        connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(granted) == 1000
    assert SendWindow.objects.get(scope="d").count == 1000
