"""What this process counts for /metrics: request latency by route, and the worker's duties.

prometheus_client's multiprocess mode: each process writes its counters to files in
PROMETHEUS_MULTIPROC_DIR (settings.METRICS_DIR, set before this module is imported), and the
/metrics view of any web process on the host adds them all up, so two gunicorn processes and a
worker report as one. What the database knows (the ledger, the queues, imports) is read at
scrape time instead (web/metrics.py), so it is the same whichever host is scraped.

Files of processes that are gone are removed when a web server or a worker starts
(forget_dead_processes): their counts go with them, which Prometheus reads as a counter reset.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from prometheus_client import Counter, Histogram

HTTP_DURATION = Histogram(
    "mailmarketer_http_request_duration_seconds",
    "Time to answer a request, by route pattern (never the path, which can carry tokens).",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HTTP_REQUESTS = Counter(
    "mailmarketer_http_requests",
    "Requests answered, by route pattern and status class (2xx, 4xx, ...).",
    ["route", "method", "status"],
)
DUTY_DURATION = Histogram(
    "mailmarketer_job_duration_seconds",
    "Time a worker duty took in a round where it found work (a batch sent, a job run).",
    ["duty"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
DUTY_FAILURES = Counter(
    "mailmarketer_job_failures", "Worker duty rounds that raised, by duty.", ["duty"]
)

_PID_FILE = re.compile(r"_(\d+)\.db$")


def observe_request(route: str | None, method: str, status: int, seconds: float) -> None:
    route = route or "(unmatched)"
    HTTP_DURATION.labels(route, method).observe(seconds)
    HTTP_REQUESTS.labels(route, method, f"{status // 100}xx").inc()


def forget_dead_processes() -> int:
    """Removes the counter files of processes that no longer run; returns how many."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return 0
    removed = 0
    for path in Path(folder).glob("*.db"):
        match = _PID_FILE.search(path.name)
        if match and not _running(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
