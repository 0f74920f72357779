"""`/metrics`: the Prometheus text format, for the operator's monitoring.

Answers only `Authorization: Bearer <MM_METRICS_TOKEN>` (401 otherwise), and does not exist
(404) while the token is unset. Two sources, added into one answer:
- this host's processes, from prometheus_client's multiprocess files (lib/metrics.py): request
  latency by route, worker duty durations and failures;
- the database, read at scrape time, so every host answers the same: ledger rows by status and
  relay (the send rate is the rate of `status="sent"`), queue depth per campaign still to send,
  expired leases taken back, import rows. These are gauges, not counters: a deleted campaign
  takes its rows with it.

Nothing here names a person: campaigns by id and workspace slug, relays by their staff-given
name.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.db.models import Count, Sum
from django.http import Http404, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from mailmarketer.accounts.access import public_view
from mailmarketer.audience.models import Import
from mailmarketer.campaigns.models import Campaign
from mailmarketer.delivery.models import Delivery

WAITING = (Delivery.Status.QUEUED, Delivery.Status.SENDING)
OPEN_CAMPAIGNS = (Campaign.Status.RUNNING, Campaign.Status.PAUSED, Campaign.Status.SCHEDULED)


class DatabaseCollector:
    def collect(self):
        rows = GaugeMetricFamily(
            "mailmarketer_deliveries",
            "Ledger rows by status and relay (the send rate: rate of status=sent).",
            labels=["status", "relay"],
        )
        by_status = (
            Delivery.objects.values("status", "server__name", "workspace__slug")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for row in by_status:
            relay = (
                f"{row['workspace__slug']}/{row['server__name']}" if row["server__name"] else "-"
            )
            rows.add_metric([row["status"], relay], row["n"])
        yield rows

        depth = GaugeMetricFamily(
            "mailmarketer_queue_depth",
            "Rows still to send (queued or in a worker's hands) per open campaign.",
            labels=["workspace", "campaign", "campaign_status"],
        )
        waiting = (
            Delivery.objects.filter(status__in=WAITING, campaign__status__in=OPEN_CAMPAIGNS)
            .values("workspace__slug", "campaign_id", "campaign__status")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for row in waiting:
            depth.add_metric(
                [row["workspace__slug"], str(row["campaign_id"]), row["campaign__status"]],
                row["n"],
            )
        yield depth

        expired = Delivery.objects.aggregate(n=Sum("lease_expiries"))["n"] or 0
        yield GaugeMetricFamily(
            "mailmarketer_lease_expiries",
            "Leases that ran out and were taken back from a worker that stopped (ledger rows' "
            "sum).",
            value=expired,
        )

        imports = GaugeMetricFamily(
            "mailmarketer_import_rows",
            "Rows of subscriber imports done, by the import's status.",
            labels=["import_status"],
        )
        for row in Import.objects.values("status").annotate(n=Sum("rows_done")).order_by():
            imports.add_metric([row["status"]], row["n"] or 0)
        yield imports


@public_view
@never_cache
@require_GET
def metrics_view(request):
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("metrics are off: set MM_METRICS_TOKEN")
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        response = HttpResponse("a bearer token is needed\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(DatabaseCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
