"""Delivery models. Writes go through actions.py and the worker duties in engine.py."""

from __future__ import annotations

from django.db import models
from django.utils.timezone import now

from mailmarketer.accounts.models import Workspace
from mailmarketer.audience.models import Subscriber
from mailmarketer.campaigns.models import Campaign
from mailmarketer.lib.crypto import EncryptedTextField


class SmtpServer(models.Model):
    """A relay a workspace sends through. With none configured, mail goes to the outbox."""

    class TlsMode(models.TextChoices):
        NONE = "none", "None (only for a relay on this machine or a private network)"
        STARTTLS = "starttls", "STARTTLS"
        IMPLICIT = "implicit", "Implicit TLS (SMTPS)"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField(default=587)
    tls_mode = models.CharField(max_length=10, choices=TlsMode.choices, default=TlsMode.STARTTLS)
    verify_certificate = models.BooleanField(default=True)
    username = models.CharField(max_length=255, blank=True)
    password = EncryptedTextField(blank=True)
    max_connections = models.PositiveSmallIntegerField(default=4)
    # Limits that hold across every worker together (see ratelimit.py); 0 = none.
    messages_per_second = models.PositiveIntegerField(default=0)
    hourly_cap = models.PositiveIntegerField(default=0)
    daily_cap = models.PositiveIntegerField(default=0)
    weight = models.PositiveSmallIntegerField(default=1)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=now)

    def __str__(self):
        return self.name


class DkimKey(models.Model):
    """A DKIM signing key for one sending domain; the private key is encrypted at rest."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    domain = models.CharField(max_length=255)
    selector = models.CharField(max_length=63)
    private_key = EncryptedTextField()
    public_key = models.TextField()
    created_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "domain"], name="dkim_domain_unique")
        ]

    def __str__(self):
        return f"{self.selector}._domainkey.{self.domain}"


class Delivery(models.Model):
    """The ledger: one row per (campaign, subscriber)."""

    class Status(models.TextChoices):
        # queued -> sending (claimed with a lease) -> sent | failed | bounced | queued (retry,
        #   or lease expired) | skipped (suppressed or unsubscribed at send time)
        # sending -> dead (its lease expired DELIVERY_MAX_LEASE_EXPIRIES times: a message that
        #   keeps crashing or hanging its worker is set aside for a person, not claimed forever)
        # queued | sending -> cancelled (campaign cancelled)
        # failed | dead -> queued (staff retry)
        # sent -> bounced (a bounce arrives later)
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        BOUNCED = "bounced", "Bounced"
        SKIPPED = "skipped", "Skipped"
        CANCELLED = "cancelled", "Cancelled"
        DEAD = "dead", "Dead"

    class SkipReason(models.TextChoices):
        # Why a row was skipped at send time; set with status skipped, empty otherwise.
        UNSUBSCRIBED = "unsubscribed", "unsubscribed from the campaign's lists"
        BLOCKLISTED = "blocklisted", "blocklisted"
        EXCLUDED = "excluded", "on an excluded list"
        SUPPRESSED = "suppressed", "suppressed (bounced, complained, erased or blocked)"
        ERASED = "erased", "erased"

    # No index of its own on workspace, campaign or server (db_index=False): every row is updated
    # twice on its way to `sent` (claimed, recorded), and neither update is HOT (status is
    # indexed), so each writes an entry into every index of the table. The campaign's rows are
    # found through the claim index and the unique (campaign, subscriber) key, which both lead
    # with the campaign; nothing reads the ledger by workspace or server alone except deleting
    # one (a workspace's rows go with it; a relay's are set to NULL: one scan, rarely).
    # Dropping the three cut PostgreSQL's CPU per message sent by ~15% (benchmarks/README.md,
    # send13c).
    # No foreign-key constraint in the database for workspace and campaign either
    # (db_constraint=False; on PostgreSQL, migration 0008): planning inserts a campaign's rows
    # in chunks of thousands, and PostgreSQL checks each constraint row by row (a lookup and a
    # row lock of the same workspace and campaign, thousands of times a chunk): another ~10% of
    # its CPU per message. What the constraints guarded cannot happen through the code: the
    # ledger's rows are written only for a launched campaign, and only drafts can be deleted
    # (campaigns.actions.do_delete_campaign, under the campaign's row lock), which have none;
    # deleting a workspace or a campaign deletes their rows as before (on_delete is Django's).
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    campaign = models.ForeignKey(
        Campaign,
        on_delete=models.CASCADE,
        related_name="deliveries",
        db_index=False,
        db_constraint=False,
    )
    # Set to NULL when the person is erased: the row stays for the campaign's totals.
    # No foreign-key constraint in the database (db_constraint=False; on PostgreSQL, migration
    # 0010), its index stays: planning inserts thousands of rows a chunk and PostgreSQL checked
    # each one's person at commit (a lookup and a key-share lock of the person's row): planning
    # cost it 15-22 us of CPU a message with the check, 12-14 without (ledger_bench, send15b).
    # Deleting or erasing a person sets their rows to NULL as before (on_delete is Django's).
    # What the constraint guarded: a chunk planned while its person is being deleted, whose
    # rows that deletion does not see yet (it commits after them); the constraint failed one
    # of the two. Now the row keeps the gone person's id until it is claimed: the person is not
    # found then, so it is skipped as erased, and that record sets its subscriber to NULL
    # (ledger.RECORD_SQL's "final").
    subscriber = models.ForeignKey(
        Subscriber,
        null=True,
        on_delete=models.SET_NULL,
        related_name="deliveries",
        db_constraint=False,
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Leases that expired on this row (its worker died or hung while holding it); at
    # DELIVERY_MAX_LEASE_EXPIRIES the row becomes dead instead of being claimed again.
    # Database defaults too: the planner inserts rows with one INSERT ... SELECT.
    lease_expiries = models.PositiveSmallIntegerField(default=0, db_default=0)
    skip_reason = models.CharField(
        max_length=20, choices=SkipReason.choices, blank=True, default="", db_default=""
    )
    next_attempt_at = models.DateTimeField(default=now)
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # No foreign-key constraint in the database either (db_constraint=False; on PostgreSQL,
    # migration 0010): the record of a part sets it on every row it marks sent, and PostgreSQL
    # checked the constraint row by row at each commit (a lookup and a key-share lock of the same
    # relay, 50 times a part): the record cost it 20-32 us of CPU a message with the check,
    # 17-25 without (ledger_bench, send15b). Deleting a relay sets its rows' server to NULL as
    # before (on_delete is Django's); a record that commits after that delete keeps the deleted
    # relay's id, which the ledger's pages read as no relay (a LEFT JOIN), where the constraint
    # failed that record instead, and its rows were sent again when their lease expired.
    server = models.ForeignKey(
        SmtpServer,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    smtp_reply = models.CharField(max_length=500, blank=True)
    message_id = models.CharField(max_length=200, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # When the row was planned, or requeued by a staff retry: temporary failures are retried
    # until MM_DELIVERY_RETRY_DEADLINE_S after it.
    created_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "subscriber"], name="delivery_unique_recipient"
            )
        ]
        indexes = [
            # The claim: queued rows of a campaign whose time has come, oldest first.
            # The id is in the index so that ORDER BY next_attempt_at, id LIMIT n reads n entries
            # instead of sorting every queued row of the campaign (rows planned together share a
            # time). Queued rows only: a row's claim and its record each write a new version
            # of it into every index whose condition it meets, and neither the sending nor the
            # sent version needs to be in this one (in-process, 20,000 messages: PostgreSQL's
            # CPU a message 70 -> 61-64 us against the index of every status, send13c). The
            # rows in flight are found by delivery_inflight, the rare outcomes by
            # delivery_outcomes; a campaign's sent rows are most of its rows.
            models.Index(
                fields=["campaign", "next_attempt_at", "id"],
                name="delivery_claim_queued",
                condition=models.Q(status="queued"),
            ),
            # The outcomes other than sent, by campaign (the ledger filtered by status, a
            # retry of the failed ones, the bounce rates): few rows, each written once.
            models.Index(
                fields=["campaign", "status", "id"],
                name="delivery_outcomes",
                condition=models.Q(
                    status__in=["failed", "bounced", "skipped", "cancelled", "dead"]
                ),
            ),
            # Expired leases are looked for among the few rows in flight only.
            models.Index(
                fields=["lease_expires_at"],
                name="delivery_inflight",
                condition=models.Q(status="sending"),
            ),
            # Rows in flight at two deaths of their worker are claimed one at a time
            # (ledger.claim): found without reading the campaign's other rows.
            models.Index(
                fields=["campaign", "next_attempt_at"],
                name="delivery_suspect",
                condition=models.Q(status="queued", lease_expiries__gte=2),
            ),
        ]

    def __str__(self):
        return f"delivery {self.pk} ({self.status})"


FINAL_STATUSES = frozenset(
    {
        Delivery.Status.SENT,
        Delivery.Status.FAILED,
        Delivery.Status.BOUNCED,
        Delivery.Status.SKIPPED,
        Delivery.Status.CANCELLED,
        Delivery.Status.DEAD,
    }
)


class SendWindow(models.Model):
    """Messages sent through a server in one window (second, hour, day): the shared counters
    behind rate limits that hold across all workers."""

    server = models.ForeignKey(SmtpServer, on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=1)  # "s", "h", "d"
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["server", "scope", "window_start"], name="send_window_unique"
            )
        ]

    def __str__(self):
        return f"{self.server_id}/{self.scope}/{self.window_start:%Y-%m-%d %H:%M:%S}: {self.count}"


from .bounces.models import Bounce, BounceMailbox, BounceSettings, WebhookReceipt  # noqa: E402, F401  (delivery/bounces/)
from .models_counts import LedgerCount, LedgerCountDelta  # noqa: E402, F401
