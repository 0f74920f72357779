"""Bounce processing's rows: each workspace's settings, and every message received."""

from __future__ import annotations

from django.db import models
from django.utils.timezone import now

from mailmarketer.accounts.models import Workspace
from mailmarketer.audience.models import Subscriber
from mailmarketer.lib.crypto import EncryptedTextField


class BounceSettings(models.Model):
    """A workspace's bounce rules; a workspace without a row has the defaults."""

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, related_name="+")
    # N soft bounces within D days make the address a hard bounce (3 in 15: a mailbox full for
    # two weeks is abandoned; one full for a day is not).
    soft_bounce_limit = models.PositiveSmallIntegerField(default=3)
    soft_bounce_days = models.PositiveSmallIntegerField(default=15)
    # Provider webhooks (webhooks.py). The URL's key is a secret shown once, kept as its
    # SHA-256 (a random 32-byte value needs no slow hash); it is also Postmark's basic-auth
    # password. The providers' own keys: Mailgun's HTTP webhook signing key (a secret: encrypted
    # at rest), SendGrid's verification public key (base64 DER or PEM), and the SNS topic ARNs
    # of SES notifications to accept (one per line; none: SES is refused).
    webhook_key_hash = models.CharField(max_length=64, blank=True, db_index=True)
    mailgun_signing_key = EncryptedTextField(blank=True)
    sendgrid_public_key = models.TextField(blank=True)
    ses_topic_arns = models.TextField(blank=True)

    def __str__(self):
        return f"bounce settings of {self.workspace_id}"


class Bounce(models.Model):
    """One message (or provider event) received about mail we sent, and what was done with it.

    The raw message is kept RAW_KEEP_DAYS (30) and then emptied by the worker
    (apply.purge_raw_one); the row stays for the rates. A message that names no workspace (a
    bounce to the receiver without a valid token) has none: it is kept for the operator (the
    table) and shown to no workspace's staff."""

    class Kind(models.TextChoices):
        HARD = "hard", "Hard bounce"
        SOFT = "soft", "Soft bounce"
        COMPLAINT = "complaint", "Complaint"
        AUTO_REPLY = "auto_reply", "Auto-reply (ignored)"
        DELAYED = "delayed", "Delay warning (ignored)"
        UNKNOWN = "unknown", "Not a bounce we understand"

    class Channel(models.TextChoices):
        SMTP = "smtp", "Bounce receiver"
        IMAP = "imap", "Bounce mailbox"
        WEBHOOK = "webhook", "Provider webhook"

    class MatchedBy(models.TextChoices):
        TOKEN = "token", "VERP token"
        MESSAGE_ID = "message_id", "Original Message-ID"
        ADDRESS = "address", "Address"
        PROVIDER = "provider", "Provider event (signed)"
        NONE = "", "Unmatched"

    class Outcome(models.TextChoices):
        # What applying the message did (one value, for filters and rates).
        SUPPRESSED = "suppressed", "Hard bounce: address suppressed and unsubscribed"
        SOFT_TO_HARD = "soft_to_hard", "Too many soft bounces: suppressed and unsubscribed"
        COUNTED = "counted", "Soft bounce counted"
        COMPLAINED = "complained", "Complaint: unsubscribed from everything and suppressed"
        ALREADY = "already", "Already suppressed"
        IGNORED = "ignored", "Ignored (auto-reply, delay warning or not a bounce)"
        NOT_ACTED = "not_acted", "Matched by address only: shown, not acted on"
        UNMATCHED = "unmatched", "No delivery found"
        REFUSED = "refused", "Refused (a token of another workspace, or malformed)"

    workspace = models.ForeignKey(
        Workspace, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    delivery = models.ForeignKey(
        "delivery.Delivery", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subscriber = models.ForeignKey(
        Subscriber, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    campaign = models.ForeignKey(
        "campaigns.Campaign", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=12, choices=Kind.choices)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    provider = models.CharField(max_length=20, blank=True)  # webhook: ses, sendgrid, ...
    matched_by = models.CharField(max_length=12, choices=MatchedBy.choices, blank=True)
    outcome = models.CharField(max_length=14, choices=Outcome.choices)
    status_code = models.CharField(max_length=12, blank=True)  # 5.1.1
    # The address the report names (personal data: masked for roles without it, erased with
    # the person) and its domain (kept for the per-domain rates).
    address = models.CharField(max_length=320, blank=True)
    recipient_domain = models.CharField(max_length=255, blank=True)
    diagnostic = models.CharField(max_length=500, blank=True)
    reason = models.CharField(max_length=300, blank=True)  # why this outcome, in words
    sender = models.CharField(max_length=320, blank=True)  # the report's From
    subject = models.CharField(max_length=300, blank=True)
    # sha256 of the raw message (or the provider's event id): the same message received twice
    # (an MTA retrying after a lost 250, an IMAP move that failed) is applied once.
    digest = models.CharField(max_length=64, unique=True)
    raw = models.BinaryField(blank=True, default=b"")
    raw_size = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(default=now)

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "-id"], name="bounce_workspace_recent"),
            models.Index(fields=["subscriber", "kind", "received_at"], name="bounce_soft_count"),
            models.Index(fields=["received_at"], name="bounce_received"),
        ]

    def __str__(self):
        return f"bounce {self.pk} ({self.kind}, {self.outcome})"


class BounceMailbox(models.Model):
    """A workspace's bounce mailbox, read over IMAP by the worker (mailbox.poll_one). Messages
    processed are moved to `move_to` or deleted, as the staff choose."""

    class TlsMode(models.TextChoices):
        IMPLICIT = "implicit", "Implicit TLS (IMAPS, port 993)"
        STARTTLS = "starttls", "STARTTLS (port 143)"
        NONE = "none", "None (only for a server on this machine)"

    class After(models.TextChoices):
        MOVE = "move", "Move to a folder"
        DELETE = "delete", "Delete"

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, related_name="+")
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField(default=993)
    tls_mode = models.CharField(max_length=10, choices=TlsMode.choices, default=TlsMode.IMPLICIT)
    verify_certificate = models.BooleanField(default=True)
    username = models.CharField(max_length=255)
    password = EncryptedTextField(blank=True)
    folder = models.CharField(max_length=200, default="INBOX")
    after = models.CharField(max_length=6, choices=After.choices, default=After.MOVE)
    move_to = models.CharField(max_length=200, default="Processed")
    enabled = models.BooleanField(default=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    last_count = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"{self.username}@{self.host}:{self.port}"


class WebhookReceipt(models.Model):
    """A signed webhook request seen (its signature, token or message id, hashed): the same
    request again is a replay and is refused. Kept twice the freshness window, then deleted."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    provider = models.CharField(max_length=20)
    receipt = models.CharField(max_length=64)
    received_at = models.DateTimeField(default=now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "provider", "receipt"], name="webhook_receipt_unique"
            )
        ]

    def __str__(self):
        return f"{self.provider} receipt {self.receipt[:12]}…"


class PendingReport(models.Model):
    """A message the receiver accepted (answered 250) and has not applied yet: kept as received,
    with one INSERT (a group of sessions' messages in one transaction), then applied in batches
    by apply.apply_pending_one (the bouncer's own background task, and a worker duty), which
    deletes it in the transaction that applies it. So the SMTP session costs one write, and a
    report answered 250 is never lost: killed before the apply, it waits here for the next."""

    raw = models.BinaryField()
    recipients = models.TextField(blank=True)  # the envelope recipients, one a line
    # sha256 of the raw message: the same message again while it waits is not queued twice.
    digest = models.CharField(max_length=64, unique=True)
    received_at = models.DateTimeField(default=now)
    attempts = models.PositiveSmallIntegerField(default=0)  # failed applies (apply._apply_each)
    last_error = models.CharField(max_length=300, blank=True)

    def __str__(self):
        return f"pending report {self.pk}"


RAW_KEEP_DAYS = 30
