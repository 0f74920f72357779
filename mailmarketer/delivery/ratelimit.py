"""Send limits per relay that hold across every worker on every host: the counters live in the
database (SendWindow rows: one per server, scope and window), and a worker reserves its batch
against them before sending, so two workers cannot both spend the same second's allowance.

Scopes: "s" (messages_per_second), "h" (hourly_cap), "d" (daily_cap), windows aligned to UTC.
A reservation grants what every scope still allows (possibly fewer than asked) in one
transaction; the rows are locked (PostgreSQL) or the write lock held (SQLite's IMMEDIATE
transactions) while counting, so the counts never overshoot.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils.timezone import now

from .models import SendWindow, SmtpServer

WINDOW_SECONDS = {"s": 1, "h": 3600, "d": 86400}


def window_start(scope: str, moment: datetime) -> datetime:
    seconds = WINDOW_SECONDS[scope]
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


def limits_of(server: SmtpServer) -> list[tuple[str, int]]:
    return [
        (scope, limit)
        for scope, limit in (
            ("s", server.messages_per_second),
            ("h", server.hourly_cap),
            ("d", server.daily_cap),
        )
        if limit
    ]


def _window(server_id: int, scope: str, start: datetime) -> SendWindow:
    rows = SendWindow.objects.select_for_update()
    try:
        return rows.get(server_id=server_id, scope=scope, window_start=start)
    except SendWindow.DoesNotExist:
        try:
            with transaction.atomic():
                return SendWindow.objects.create(
                    server_id=server_id, scope=scope, window_start=start
                )
        except IntegrityError:  # another worker created it meanwhile
            return rows.get(server_id=server_id, scope=scope, window_start=start)


def reserve(server: SmtpServer, wanted: int) -> tuple[int, datetime | None]:
    """(how many of `wanted` may be sent now, when to try again if that is fewer)."""
    limits = limits_of(server)
    if not limits or wanted <= 0:
        return wanted, None
    moment = now()
    granted = wanted
    retry_at = None
    with transaction.atomic():
        windows = []
        for scope, limit in limits:
            start = window_start(scope, moment)
            window = _window(server.pk, scope, start)
            available = max(0, limit - window.count)
            if available < granted:
                granted = available
                end = start + timedelta(seconds=WINDOW_SECONDS[scope])
                retry_at = end if retry_at is None else max(retry_at, end)
            windows.append(window.pk)
        if granted:
            SendWindow.objects.filter(pk__in=windows).update(count=F("count") + granted)
    return granted, (retry_at if granted < wanted else None)


def reserve_waiting(server: SmtpServer, wanted: int, max_wait: float = 1.5):
    """Like reserve(), but wait out a per-second window instead of giving up (a longer wait,
    for an hourly or daily cap, is returned to the caller to requeue)."""
    while True:
        granted, retry_at = reserve(server, wanted)
        if granted or retry_at is None:
            return granted, retry_at
        pause = (retry_at - now()).total_seconds()
        if pause > max_wait:
            return 0, retry_at
        time.sleep(max(0.0, pause))


def purge_old_windows() -> int:
    """Forget counters older than two days (the longest window is one)."""
    deleted, _ = SendWindow.objects.filter(window_start__lt=now() - timedelta(days=2)).delete()
    return deleted
