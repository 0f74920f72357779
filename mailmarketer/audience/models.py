"""Audience models. Writes go through actions.py; reads through queries.py."""

from __future__ import annotations

import hashlib
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.timezone import now

from mailmarketer.accounts.models import Workspace, slug_validator
from mailmarketer.lib.text import one_line_problem, refuse_controls

from .emails import email_key

# The workspace of a subscriber, a subscription and a consent record: cascaded by Django (the
# only way a workspace is deleted) rather than checked by the database on every row written.
# These are the tables an import fills, a row each per person, and the check was the single
# largest cost of those writes on PostgreSQL: it locks the workspace row (FOR KEY SHARE) once
# per row written. Measured, INSERT ... SELECT of 100,000 people into all three tables: 14.0 s
# before; 13.0 s with the redundant single-column indexes dropped; 9.8 s with these constraints
# dropped too (benchmarks/import_bench.py measures this "floor" in each run). Every query of
# these tables names the workspace first in a composite index (or goes through the subscriber),
# so the column needs no index of its own. A subscription's and a consent record's workspace is
# their subscriber's, written with it.
TENANT_KEY = {"on_delete": models.CASCADE, "db_constraint": False, "db_index": False}


class SubscriberManager(models.Manager):
    def bulk_create(self, objs, *args, **kwargs):
        # bulk_create skips save(): the comparison key is derived here too, so no writer
        # through the ORM can leave it out. (The import's SQL writes it itself.)
        objs = list(objs)
        for obj in objs:
            obj.email_key = email_key(obj.email)
        return super().bulk_create(objs, *args, **kwargs)


class Subscriber(models.Model):
    class Status(models.TextChoices):
        # enabled -> blocklisted (by staff; every subscription becomes unsubscribed)
        # blocklisted -> enabled (by staff; subscriptions stay unsubscribed until renewed)
        ENABLED = "enabled", "Enabled"
        BLOCKLISTED = "blocklisted", "Blocklisted"

    class Source(models.TextChoices):
        FORM = "form", "Form"
        IMPORT = "import", "Import"
        API = "api", "API"
        ADMIN = "admin", "Added by staff"
        # Someone a transactional message (POST /api/v1/tx) was sent to by address: a record on
        # no list, with no subscription and no consent; marketing never reaches them unless they
        # subscribe later.
        TRANSACTIONAL = "tx", "Transactional mail (no consent)"

    # The three tables an import writes a row each into per person keep their workspace without
    # a database constraint and without an index of their own; see TENANT_KEY below.
    workspace = models.ForeignKey(Workspace, related_name="+", **TENANT_KEY)
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Normalised by emails.normalise_email: trimmed, domain lower-cased, the local part as typed
    # (what is shown and mailed).
    email = models.CharField(max_length=254)
    # emails.email_key(email): the whole address lower-cased, what addresses are compared by;
    # unique per workspace. Derived on every save; the import's SQL writes it with the email.
    email_key = models.CharField(max_length=254, editable=False)
    # The display name (the To header's, the one shown): made from first_name and last_name
    # when either is given (display_name()), kept whole where only a full name is known.
    name = models.CharField(max_length=200, blank=True)
    # What templates greet people by ({{ subscriber.first_name }}). A database default too, so
    # the import's own SQL and rows written before migration 0010 need not name them.
    first_name = models.CharField(max_length=100, blank=True, default="", db_default="")
    last_name = models.CharField(max_length=100, blank=True, default="", db_default="")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ENABLED)
    attributes = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.ADMIN)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    objects = SubscriberManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "email_key"], name="subscriber_email_key_unique"
            )
        ]
        indexes = [
            models.Index(fields=["workspace", "created_at"], name="subscriber_ws_created"),
            models.Index(fields=["workspace", "status"], name="subscriber_ws_status"),
            # Newest-first keyset paging inside one workspace (queries.search_subscribers):
            # without it, a small workspace next to a large one walks the whole primary key.
            models.Index(fields=["workspace", "-id"], name="subscriber_ws_newest"),
        ]

    def __str__(self):
        # Never the address: this is what the audit log records about a subscriber.
        return f"subscriber {self.uuid}"

    def save(self, *args, **kwargs):
        self.email_key = email_key(self.email)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "email" in update_fields:
            kwargs["update_fields"] = {*update_fields, "email_key"}
        super().save(*args, **kwargs)


def display_name(first_name: str, last_name: str, name: str = "") -> str:
    """The name shown for someone: first and last joined when either is known, else the full
    name as given."""
    joined = " ".join(part for part in (first_name.strip(), last_name.strip()) if part)
    return joined[:200] or name.strip()


class MailingList(models.Model):
    class Visibility(models.TextChoices):
        PUBLIC = "public", "Public (shown in the preference centre)"
        PRIVATE = "private", "Private"

    class OptIn(models.TextChoices):
        SINGLE = "single", "Single opt-in"
        DOUBLE = "double", "Double opt-in (mails only confirmed members)"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=150)
    slug = models.CharField(max_length=50, validators=[slug_validator])
    description = models.TextField(blank=True)
    visibility = models.CharField(
        max_length=8, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    optin = models.CharField(max_length=8, choices=OptIn.choices, default=OptIn.SINGLE)
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "slug"], name="list_slug_unique")
        ]

    def __str__(self):
        return self.name

    def clean(self):
        # A list's name is shown in the preference centre and can reach a subject.
        refuse_controls({"name": self.name, "slug": self.slug}, {"description": self.description})
        for tag in self.tags if isinstance(self.tags, list) else []:
            if one_line_problem(tag):
                raise ValidationError({"tags": f"tags {one_line_problem(tag)}"})


class Subscription(models.Model):
    class Status(models.TextChoices):
        # (new) -> unconfirmed: double opt-in list, confirmation mail pending
        # (new) -> confirmed: single opt-in, or staff/import stating consent is held
        # unconfirmed -> confirmed: the person clicked the confirmation link (or staff)
        # unconfirmed | confirmed -> unsubscribed: the person, staff, a hard bounce, a complaint
        # unsubscribed -> unconfirmed | confirmed: only the person themselves (a form) or staff;
        #   never an import or a bulk API call, which leave unsubscribed members alone
        UNCONFIRMED = "unconfirmed", "Unconfirmed"
        CONFIRMED = "confirmed", "Confirmed"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"

    class Reason(models.TextChoices):
        BY_SUBSCRIBER = "by_subscriber", "By the subscriber"
        BY_ADMIN = "by_admin", "By staff"
        BY_IMPORT = "by_import", "By an import"
        BY_API = "by_api", "Through the API"
        BY_BOUNCE = "by_bounce", "By a hard bounce"
        BY_COMPLAINT = "by_complaint", "By a spam complaint"

    workspace = models.ForeignKey(Workspace, related_name="+", **TENANT_KEY)
    # Both led by an index of the Meta below (subscription_unique, subscription_list_status).
    subscriber = models.ForeignKey(
        Subscriber, on_delete=models.CASCADE, related_name="subscriptions", db_index=False
    )
    mailing_list = models.ForeignKey(
        MailingList, on_delete=models.CASCADE, related_name="subscriptions", db_index=False
    )
    status = models.CharField(max_length=12, choices=Status.choices)
    status_reason = models.CharField(max_length=16, choices=Reason.choices)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subscriber", "mailing_list"], name="subscription_unique"
            )
        ]
        indexes = [
            models.Index(fields=["mailing_list", "status"], name="subscription_list_status"),
        ]

    def __str__(self):
        return f"subscription {self.pk} ({self.status})"


class ConsentNotice(models.Model):
    """The exact words shown where consent was collected. Immutable: changing the words makes a
    new version, so every consent record points at the text the person actually saw."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=150, help_text="Where it is shown, e.g. 'Newsletter form'")
    version = models.PositiveIntegerField()
    text = models.TextField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "name", "version"], name="notice_version_unique"
            ),
            models.UniqueConstraint(
                fields=["workspace", "name", "sha256"], name="notice_text_unique"
            ),
        ]

    def __str__(self):
        return f"{self.name} v{self.version}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("a consent notice is immutable: record a new version instead")
        super().save(*args, **kwargs)

    @staticmethod
    def hash_text(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()


class ConsentRecord(models.Model):
    """The consent ledger: one row per grant, confirmation or withdrawal. Never updated; deleted
    only with the person on erasure."""

    class Action(models.TextChoices):
        GRANT = "grant", "Granted"
        CONFIRM = "confirm", "Confirmed (double opt-in)"
        WITHDRAW = "withdraw", "Withdrawn"

    class SourceType(models.TextChoices):
        FORM = "form", "Form"
        IMPORT = "import", "Import"
        API = "api", "API"
        ADMIN = "admin", "Staff"
        SUBSCRIBER = "subscriber", "The subscriber"  # unsubscribe link, preference centre
        SYSTEM = "system", "System"  # bounces, complaints

    workspace = models.ForeignKey(Workspace, related_name="+", **TENANT_KEY)
    # Led by consent_subscriber_at.
    subscriber = models.ForeignKey(
        Subscriber, on_delete=models.CASCADE, related_name="consent_records", db_index=False
    )
    # "email:<list slug>" or "tracking"
    purpose = models.CharField(max_length=80)
    mailing_list = models.ForeignKey(
        MailingList, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=8, choices=Action.choices)
    # Notices are immutable and go only with their workspace: nothing looks records up by one.
    notice = models.ForeignKey(
        ConsentNotice,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    source_type = models.CharField(max_length=12, choices=SourceType.choices)
    source_id = models.CharField(max_length=64, blank=True)
    source_label = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField(default=now)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["subscriber", "at"], name="consent_subscriber_at")]
        ordering = ["at", "id"]

    def __str__(self):
        return f"consent {self.action} {self.purpose}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("the consent ledger is append-only")
        super().save(*args, **kwargs)


class Suppression(models.Model):
    """Addresses that must never be mailed or added again, kept as a hash so that it outlives
    erasure (emails.suppression_hash)."""

    class Reason(models.TextChoices):
        UNSUBSCRIBED_ALL = "unsubscribed_all", "Unsubscribed from everything"
        HARD_BOUNCE = "hard_bounce", "Hard bounce"
        COMPLAINT = "complaint", "Spam complaint"
        ERASED = "erased", "Erased at the person's request"
        MANUAL = "manual", "Added by staff"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    email_hash = models.CharField(max_length=64)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "email_hash"], name="suppression_unique")
        ]

    def __str__(self):
        return f"suppression {self.email_hash[:12]}… ({self.reason})"


class Reconsent(models.Model):
    """A person whose address is suppressed as erased (or as "unsubscribed from everything")
    signing up again: the confirmation mail that asks them, the one message the delivery engine
    may send to that address (it names the transactional message by id), and whether they
    confirmed. Only confirming lifts the suppression (subscribing.confirm_reconsent); until
    then nothing but this mail reaches the address.

    Status: pending -> confirmed (the person confirmed) | expired (they did not, in time: the
    worker erases the record again, actions.expire_reconsent_one).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for the person to confirm"
        CONFIRMED = "confirmed", "Confirmed: the suppression was lifted"
        EXPIRED = "expired", "Not confirmed in time"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="+")
    email_hash = models.CharField(max_length=64)
    # The transactional message (campaigns.Campaign) carrying the confirmation link. An id, not
    # a foreign key: campaigns sits above audience.
    campaign_id = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=now)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["workspace", "campaign_id"], name="reconsent_campaign")]

    def __str__(self):
        return f"reconsent {self.pk} ({self.status})"


class Import(models.Model):
    """A subscriber import: the uploaded file (kept under DATA_DIR/imports/<id>/ while the job
    needs it), how its columns map, what it does, and the job's progress (importing/)."""

    class Mode(models.TextChoices):
        SUBSCRIBE = "subscribe", "Add and subscribe to lists"
        UPDATE = "update", "Update existing subscribers"
        BLOCKLIST = "blocklist", "Blocklist"

    class AttributeMode(models.TextChoices):
        MERGE = "merge", "Merge: add and replace the file's attributes, keep the others"
        OVERWRITE = "overwrite", "Overwrite: replace all attributes with the file's"

    class Status(models.TextChoices):
        # draft -> queued (mapping chosen; the job is enqueued) | deleted
        # queued -> running (a worker claims it) | cancelled
        # running -> finished | failed | cancelled (looked at between chunks)
        # failed | running (stalled) -> queued (resume: goes on after the last committed chunk)
        DRAFT = "draft", "Awaiting column mapping"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    # As uploaded, for display only: the stored file is always importing.files.source_path().
    original_name = models.CharField(max_length=255)
    file_size = models.BigIntegerField(default=0)
    compression = models.CharField(max_length=4, blank=True)  # "" | "gzip" | "zip"
    encoding = models.CharField(max_length=16)  # a Python codec name: utf-8, utf-8-sig, cp1252
    delimiter = models.CharField(max_length=1)
    header = models.JSONField(default=list)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.SUBSCRIBE)
    attribute_mode = models.CharField(
        max_length=10, choices=AttributeMode.choices, default=AttributeMode.MERGE
    )
    # {"email": column, "name": column | null, "attributes": [[column, name, type], ...]}
    mapping = models.JSONField(default=dict, blank=True)
    lists = models.ManyToManyField(MailingList, related_name="+", blank=True)
    confirmed = models.BooleanField(default=False)
    notice = models.ForeignKey(
        ConsentNotice, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    # An estimate from the file size until the job has read the whole file once.
    rows_total = models.BigIntegerField(default=0)
    rows_total_exact = models.BooleanField(default=False)
    # Data rows committed so far: a resumed job skips this many and goes on.
    rows_done = models.BigIntegerField(default=0)
    rows_created = models.BigIntegerField(default=0)
    rows_updated = models.BigIntegerField(default=0)
    rows_unchanged = models.BigIntegerField(default=0)
    rows_skipped = models.BigIntegerField(default=0)  # rows in the error report
    skipped_reasons = models.JSONField(default=dict, blank=True)  # reason code -> rows
    # Bytes of the error report that belong to committed chunks (a resumed job cuts it there).
    report_size = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=now)  # the job's heartbeat: set by every chunk

    class Meta:
        indexes = [models.Index(fields=["workspace", "-created_at"], name="import_ws_created")]

    def __str__(self):
        return f"import {self.pk} ({self.status})"


class Segment(models.Model):
    """A saved rule tree over subscribers (the format is documented in segments/__init__.py).

    Members are computed when asked (segments.segment_queryset), never stored, so a count is
    always current and a stored segment never goes stale. `rules` is kept as validate_rules
    returned it: versioned, so later condition kinds are added without rewriting stored rows.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=150)
    description = models.TextField(blank=True)
    rules = models.JSONField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="segment_name_unique")
        ]

    def __str__(self):
        return self.name


from .models_facts import OBJECT_KEY_MAX, Fact, FactDay, FactKind  # noqa: E402, F401
