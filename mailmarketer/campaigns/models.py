"""Campaign models. Writes go through actions.py; reads through queries.py."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils.timezone import now

from mailmarketer.accounts.models import TrackingMode, User, Workspace
from mailmarketer.audience.models import MailingList, Segment


class Layout(models.Model):
    """The HTML around a campaign's content. `{{ content }}` marks where the content goes."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=150)
    html = models.TextField()
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    def __str__(self):
        return self.name


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        RUNNING = "running", "Sending"
        PAUSED = "paused", "Paused"
        FINISHED = "finished", "Finished"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"

    class Format(models.TextChoices):
        MARKDOWN = "markdown", "Markdown"
        HTML = "html", "HTML"
        TEXT = "text", "Plain text"

    class Kind(models.TextChoices):
        MARKETING = "marketing", "Marketing"  # needs a postal address, List-Unsubscribe, consent
        TRANSACTIONAL = "transactional", "Transactional"  # /api/v1/tx: one message to one person

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.MARKETING)
    name = models.CharField(max_length=200)
    subject = models.CharField(max_length=500, help_text="A template: {{ subscriber.name }} works")
    from_name = models.CharField(max_length=100, blank=True)
    from_email = models.EmailField(blank=True)
    reply_to = models.EmailField(blank=True)
    body_format = models.CharField(max_length=8, choices=Format.choices, default=Format.MARKDOWN)
    body = models.TextField(blank=True)
    # Plain-text alternative; generated from the HTML when empty.
    text_body = models.TextField(blank=True)
    layout = models.ForeignKey(
        Layout, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lists = models.ManyToManyField(MailingList, blank=True, related_name="+")
    exclude_lists = models.ManyToManyField(MailingList, blank=True, related_name="+")
    # Optional narrowing: only members of the lists who also match this segment; and nobody who
    # matches one of the excluded segments. Evaluated when the campaign is planned.
    segment = models.ForeignKey(
        Segment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    exclude_segments = models.ManyToManyField(Segment, blank=True, related_name="+")
    # Extra headers, as [[name, value], ...]; validated against injection when saved.
    headers = models.JSONField(default=list, blank=True)
    archive = models.BooleanField(default=False, help_text="Show on the public archive page")
    # Values the templates see as {{ data.* }}: what a transactional message is about (an order,
    # a booking). It can name the person, so erasure clears it (delivery/apps.py).
    data = models.JSONField(default=dict, blank=True)
    # Email tracking for this campaign (accounts.models.TrackingMode); empty: the workspace's.
    tracking_mode = models.CharField(
        max_length=10, choices=TrackingMode.choices, blank=True, default=""
    )

    # draft -> scheduled | running | cancelled; scheduled -> draft | running | cancelled;
    # running -> paused | finished | cancelled | failed; paused -> running | cancelled;
    # failed -> running (retry); finished and cancelled are final (a staff retry of failed
    # messages reopens a finished campaign). Sending owns the status: delivery/status.py holds
    # TRANSITIONS and the one function that writes it.
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    status_reason = models.CharField(max_length=500, blank=True)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Launch snapshot: only subscribers with an id up to this one are planned, so people who
    # join after launch are not included; planning walks the audience up to it in id order.
    audience_max_id = models.BigIntegerField(null=True, blank=True)
    planned_up_to = models.BigIntegerField(default=0)
    planning_done = models.BooleanField(default=False)

    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        indexes = [models.Index(fields=["workspace", "status"], name="campaign_ws_status")]

    def __str__(self):
        return self.name

    @property
    def effective_tracking_mode(self) -> str:
        """The campaign's tracking mode, or its workspace's when it names none."""
        return self.tracking_mode or self.workspace.tracking_mode


EDITABLE_STATUSES = frozenset({Campaign.Status.DRAFT, Campaign.Status.SCHEDULED})


class CampaignLink(models.Model):
    """A link found in a campaign's content, stored once when the campaign is compiled; the
    tracking redirect goes only to URLs stored here."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="links")
    url = models.TextField()
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["position"]

    def __str__(self):
        return self.url


class Attachment(models.Model):
    """A small file sent with every message of a campaign (limits in actions.py)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="attachments")
    filename = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100)
    data = models.BinaryField()
    size = models.PositiveIntegerField()

    def __str__(self):
        return self.filename


from .models_images import CampaignImage  # noqa: E402, F401
