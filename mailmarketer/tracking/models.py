"""Tracking models: email opens and clicks with their roll-ups (here), website activity
(models_web.py). Both record what a person did as facts per person through the one writer
in audience (audience/facts.py), which behaviour segments read.
"""

from __future__ import annotations

from django.db import models

from mailmarketer.accounts.models import Workspace
from mailmarketer.audience.models import Subscriber

# -- email opens and clicks (mail.py records them, rollups.py counts them) ------------------------

USER_AGENT_MAX = 256


class EmailEventKind(models.TextChoices):
    OPEN = "open", "Open"
    CLICK = "click", "Click"


class AgentClass(models.TextChoices):
    """What kind of client made a hit (mail.classify_agent), for the machine flag and reports."""

    APPLE_MPP = "apple_mpp", "Apple Mail Privacy Protection"
    GOOGLE_PROXY = "google_proxy", "Google image proxy"
    YAHOO_PROXY = "yahoo_proxy", "Yahoo image proxy"
    SCANNER = "scanner", "Link scanner"
    BROWSER = "browser", "Web browser"
    MAIL_CLIENT = "mail_client", "Mail client"
    OTHER = "other", "Other"
    NONE = "none", "No user agent"


class MachineReason(models.TextChoices):
    """Why an event was flagged as a machine's; empty for a person's."""

    PROXY = "proxy", "Mail privacy proxy or image cache"
    SCANNER_AGENT = "scanner_agent", "Known link-scanner user agent"
    HEAD = "head", "HEAD request"
    FAST = "fast", "Within seconds of delivery"
    BURST = "burst", "Several links of one message at once"


class EmailEvent(models.Model):
    """One row per open or click hit: append-only, written only by mail.store_hits.

    Shaped for monthly partitioning on PostgreSQL (the way the web events are): no unique
    constraint and no foreign key pointing at this table, `at` set on every row (the
    partition key), so `(id, at)` can become the key of a partitioned table without changing
    what reads it. Read by the roll-up duty (rollups.py, in id order), the person's timeline,
    exports and erasure: never by a report.

    Identified events name the ledger row and the person; anonymous ones (the mode, or a person
    without the tracking consent the workspace requires) name neither, only `recipient_key`, a
    keyed hash of the ledger row that makes unique counts possible and names nobody."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    campaign_id = models.BigIntegerField()
    kind = models.CharField(max_length=5, choices=EmailEventKind.choices)
    at = models.DateTimeField()
    # Identified only; erasure deletes the person's rows (apps.py).
    subscriber = models.ForeignKey(
        Subscriber, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    delivery_id = models.BigIntegerField(null=True, blank=True)
    link_id = models.BigIntegerField(null=True, blank=True)  # campaigns.CampaignLink, clicks
    recipient_key = models.CharField(max_length=22)
    # The recipient's mail domain (for the report by domain; names nobody).
    domain = models.CharField(max_length=100, blank=True)
    agent_class = models.CharField(max_length=12, choices=AgentClass.choices)
    user_agent = models.CharField(max_length=USER_AGENT_MAX, blank=True)
    machine = models.BooleanField(default=False)
    machine_reason = models.CharField(
        max_length=14, choices=MachineReason.choices, blank=True, default=""
    )
    # Truncated to /24 (IPv4) or /48 (IPv6) unless the workspace keeps none (mail.stored_ip).
    ip = models.GenericIPAddressField(null=True, blank=True)
    # Firsts, decided when the hit is stored, so that roll-ups can add unique counts up
    # (per human/machine class): the recipient's first open-or-click, first click, first
    # click of this link.
    first_open = models.BooleanField(default=False)
    first_click = models.BooleanField(default=False)
    first_link_click = models.BooleanField(default=False)

    class Meta:
        indexes = [
            # The firsts: this recipient's earlier events in this campaign.
            models.Index(fields=["campaign_id", "recipient_key"], name="emailevent_recipient"),
            # The person's timeline.
            models.Index(fields=["subscriber", "at"], name="emailevent_subscriber_at"),
            # Retention by time, per workspace.
            models.Index(fields=["workspace", "at"], name="emailevent_ws_at"),
        ]

    def __str__(self):
        return f"{self.kind} campaign {self.campaign_id}"


class Grain(models.TextChoices):
    HOUR = "h", "Hour"
    DAY = "d", "Day"


class CampaignStat(models.Model):
    """Counts per campaign, per hour and per day, per link (0: the campaign as a whole), per
    kind and per human/machine: what every campaign report reads. Kept by rollups.roll_up_one.
    `uniques` adds up the events' first_* flags, so it is exact across buckets."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    campaign_id = models.BigIntegerField()
    grain = models.CharField(max_length=1, choices=Grain.choices)
    bucket = models.DateTimeField()  # start of the hour or the UTC day
    link_id = models.BigIntegerField(default=0)
    kind = models.CharField(max_length=5, choices=EmailEventKind.choices)
    machine = models.BooleanField()
    total = models.PositiveIntegerField(default=0)
    uniques = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign_id", "grain", "bucket", "link_id", "kind", "machine"],
                name="campaignstat_one_per_bucket",
            )
        ]

    def __str__(self):
        return f"{self.kind} campaign {self.campaign_id} {self.bucket}: {self.total}"


class CampaignDomainStat(models.Model):
    """Counts per campaign and recipient mail domain, over the campaign's life."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    campaign_id = models.BigIntegerField()
    domain = models.CharField(max_length=100)
    kind = models.CharField(max_length=5, choices=EmailEventKind.choices)
    machine = models.BooleanField()
    total = models.PositiveIntegerField(default=0)
    uniques = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign_id", "domain", "kind", "machine"],
                name="campaigndomainstat_one",
            )
        ]

    def __str__(self):
        return f"{self.domain} {self.kind}: {self.total}"


class RollupCursor(models.Model):
    """How far a roll-up has read its events (the last event id counted)."""

    name = models.CharField(max_length=40, unique=True)
    last_id = models.BigIntegerField(default=0)

    def __str__(self):
        return f"{self.name} at {self.last_id}"


from .models_uploads import LogUpload  # noqa: E402, F401 (staff uploads of access logs)
from .models_web import *  # noqa: E402,F403 (trackweb: sites, web hits, roll-ups)
