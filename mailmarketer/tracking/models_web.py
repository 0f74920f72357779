"""Website activity: sites, their hits, the daily salts of the visitor hash, and the roll-ups
every website report reads (DESIGN.md section 5, "Tracking").

- Site: a website of a workspace, with the origins its snippet may post from and its privacy
  settings (what is kept of the IP address, how long raw hits are kept).
- WebHit: one row per page view, outbound click, download or custom event, from the snippet
  (/t/e) or from an imported access log: the same columns either way, so a report or a segment
  does not care where a hit came from. Append-only; read only by the roll-up duty, exports and
  erasure. On PostgreSQL the table is partitioned by month (migration 0003_..._trackweb), which
  is why the idempotency key's unique constraint includes the time: a partitioned table's unique
  keys must hold the partition key.
- VisitorSalt: the salt of the daily visitor hash; yesterday's and older are deleted by the
  worker, after which a hash can no longer be linked to an address and browser.
- WebRollup: counts per site, period (hour or day), dimension and value; WebCounter: what was
  counted apart (bots, static assets, refused hits) per site and day.
"""

from __future__ import annotations

import secrets

from django.db import models
from django.utils.timezone import now

from mailmarketer.accounts.models import Workspace
from mailmarketer.audience.models import Subscriber

# Length caps of what a hit captures from outside (everything is cut, never refused).
PATH_MAX = 1024
URL_MAX = 1024
TITLE_MAX = 300
HOST_MAX = 253
UTM_MAX = 100
NAME_MAX = 100
PROPS_MAX = 1000
UA_FIELD_MAX = 50
VERSION_MAX = 20
VALUE_MAX = 1024  # a roll-up's value: a path, a referrer host, a browser and version


def new_site_key() -> str:
    return secrets.token_urlsafe(12)


class IpMode(models.TextChoices):
    NONE = "none", "Not kept"
    TRUNCATE = "truncate", "Truncated (/24 for IPv4, /48 for IPv6)"
    KEEP = "keep", "Kept whole for a few days, then truncated"


class Site(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    domain = models.CharField(max_length=HOST_MAX)
    # The public key the snippet names (data-site); random, so sites cannot be enumerated.
    key = models.CharField(max_length=22, unique=True, default=new_site_key)
    # One origin a line ("https://www.acme.test"); hits from any other origin store nothing.
    origins = models.TextField(blank=True)
    ip_mode = models.CharField(max_length=8, choices=IpMode.choices, default=IpMode.TRUNCATE)
    ip_days = models.PositiveSmallIntegerField(default=7)  # with ip_mode=keep
    retention_days = models.PositiveIntegerField(default=395)  # raw hits; roll-ups stay
    created_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "domain"], name="tracking_site_domain")
        ]
        ordering = ["name", "id"]

    def __str__(self):
        return self.name

    def origin_list(self) -> list[str]:
        return [line.strip() for line in self.origins.splitlines() if line.strip()]


class HitKind(models.TextChoices):
    PAGEVIEW = "pageview", "Page view"
    OUTBOUND = "outbound", "Outbound link"
    DOWNLOAD = "download", "Download"
    EVENT = "event", "Custom event"


class HitSource(models.TextChoices):
    SNIPPET = "snippet", "Snippet"
    LOG = "log", "Access log"


class ReferrerClass(models.TextChoices):
    DIRECT = "direct", "Direct"
    SEARCH = "search", "Search"
    SOCIAL = "social", "Social"
    EMAIL = "email", "Email"
    CAMPAIGN = "campaign", "Campaign (UTM)"
    INTERNAL = "internal", "Internal"
    OTHER = "other", "Other site"


class WebHit(models.Model):
    # Not indexed: every read goes by site (which belongs to one workspace); an index less
    # makes the insert, the one hot path, cheaper.
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="+", db_index=False)
    at = models.DateTimeField()
    kind = models.CharField(max_length=8, choices=HitKind.choices, default=HitKind.PAGEVIEW)
    source = models.CharField(max_length=8, choices=HitSource.choices, default=HitSource.SNIPPET)
    # Idempotency: a replayed spool line or a re-imported log line has the same key.
    key = models.CharField(max_length=32)
    path = models.CharField(max_length=PATH_MAX)
    title = models.CharField(max_length=TITLE_MAX, blank=True)
    referrer = models.CharField(max_length=URL_MAX, blank=True)
    referrer_host = models.CharField(max_length=HOST_MAX, blank=True)
    referrer_class = models.CharField(
        max_length=8, choices=ReferrerClass.choices, default=ReferrerClass.DIRECT
    )
    utm_source = models.CharField(max_length=UTM_MAX, blank=True)
    utm_medium = models.CharField(max_length=UTM_MAX, blank=True)
    utm_campaign = models.CharField(max_length=UTM_MAX, blank=True)
    utm_term = models.CharField(max_length=UTM_MAX, blank=True)
    utm_content = models.CharField(max_length=UTM_MAX, blank=True)
    # The outbound link or the downloaded file; the custom event's name and properties.
    target = models.CharField(max_length=URL_MAX, blank=True)
    name = models.CharField(max_length=NAME_MAX, blank=True)
    props = models.CharField(max_length=PROPS_MAX, blank=True)
    browser = models.CharField(max_length=UA_FIELD_MAX, blank=True)
    browser_version = models.CharField(max_length=VERSION_MAX, blank=True)
    os = models.CharField(max_length=UA_FIELD_MAX, blank=True)
    os_version = models.CharField(max_length=VERSION_MAX, blank=True)
    device = models.CharField(max_length=8, blank=True)  # desktop, mobile, tablet
    # As the site's ip_mode says: empty, truncated, or whole until the privacy duty truncates it.
    ip = models.CharField(max_length=45, blank=True)
    ip_whole = models.BooleanField(default=False)
    visitor = models.CharField(max_length=16)  # the daily-salted hash
    status = models.PositiveSmallIntegerField(null=True, blank=True)  # from access logs
    # The identified tier only: set when the person's visitor token came with the hit and
    # their tracking consent allows it.
    subscriber = models.ForeignKey(
        Subscriber,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["site", "key", "at"], name="tracking_webhit_key"),
        ]
        indexes = [
            # The roll-up duty reads one site's hits of one hour or day.
            models.Index(fields=["site", "at"], name="tracking_webhit_site_at"),
            # Partial indexes, so the anonymous majority of hits costs them nothing: whole IPs
            # for the privacy duty, a person's hits for their export, erasure and timeline.
            models.Index(
                fields=["at"], name="tracking_webhit_ipwhole", condition=models.Q(ip_whole=True)
            ),
            models.Index(
                fields=["subscriber", "at"],
                name="tracking_webhit_person",
                condition=models.Q(subscriber__isnull=False),
            ),
        ]

    def __str__(self):
        return f"{self.kind} {self.path}"


class VisitorSalt(models.Model):
    day = models.DateField(unique=True)
    salt = models.CharField(max_length=64)

    def __str__(self):
        return f"salt of {self.day}"


class Period(models.TextChoices):
    HOUR = "hour", "Hour"
    DAY = "day", "Day"


class WebRollup(models.Model):
    """Counts of one site for one hour or day, per dimension and value. The dimension "total"
    (value "") holds the site's figures: hits, page views, visitors, visits, bounces and the
    visits' summed duration."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="+", db_index=False)
    period = models.CharField(max_length=4, choices=Period.choices)
    start = models.DateTimeField()
    dimension = models.CharField(max_length=20)
    value = models.CharField(max_length=VALUE_MAX, blank=True)
    hits = models.PositiveIntegerField(default=0)
    pageviews = models.PositiveIntegerField(default=0)
    visitors = models.PositiveIntegerField(default=0)
    visits = models.PositiveIntegerField(default=0)
    bounces = models.PositiveIntegerField(default=0)
    duration = models.PositiveBigIntegerField(default=0)  # seconds, summed over visits

    class Meta:
        indexes = [
            models.Index(
                fields=["site", "period", "dimension", "start"], name="tracking_rollup_read"
            )
        ]

    def __str__(self):
        return f"{self.period} {self.start} {self.dimension}={self.value}"


class RollupDue(models.Model):
    """A (site, UTC day) whose roll-up must be rebuilt: written when hits are stored, claimed
    and deleted by the roll-up duty."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    # When the day was first marked since its last rebuild (a conflict keeps the first).
    marked_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["site", "day"], name="tracking_rollupdue_one")
        ]

    def __str__(self):
        return f"roll-up due {self.site_id} {self.day}"


class WebCounter(models.Model):
    """What was counted apart, per site and day: "bot", "static", "refused" (origin not
    allowed), "flood" (rate-limited), "bad_line" (unparseable log lines)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    name = models.CharField(max_length=12)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["site", "day", "name"], name="tracking_webcounter_one")
        ]

    def __str__(self):
        return f"{self.name} {self.day} x{self.count}"
