"""Signup models: forms, their submissions, and the double opt-in confirmations they start.

Writes go through actions.py. The people a form reaches are audience subscribers: nothing here
holds a subscription or a consent record (audience.actions is their one writer); these tables
hold what only a form knows: which page, which notice, which confirmation mail.
"""

from __future__ import annotations

from django.db import models
from django.utils.timezone import now

from mailmarketer.accounts.models import Workspace, slug_validator
from mailmarketer.audience.models import ConsentNotice, MailingList, Subscriber


class Form(models.Model):
    class Kind(models.TextChoices):
        # Only newsletter forms can be built and submitted yet; the other kinds are named here
        # so that adding them adds behaviour, not a migration of every stored form.
        NEWSLETTER = "newsletter", "Newsletter sign-up"
        WEBINAR = "webinar", "Webinar registration"
        RESOURCE = "resource", "Resource download"
        EVALUATION = "evaluation", "Evaluation request"

    class ListMode(models.TextChoices):
        FIXED = "fixed", "Subscribe to all of the form's lists"
        CHOICE = "choice", "Let the person tick the lists they want"

    class Language(models.TextChoices):
        ENGLISH = "en", "English"
        GERMAN = "de", "German"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=150)
    slug = models.CharField(max_length=50, validators=[slug_validator])
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.NEWSLETTER)
    title = models.CharField(max_length=200)
    intro = models.TextField(blank=True)
    # [{"key", "type", "label", "required", "help", "choices"}], checked by fields.clean_fields.
    fields = models.JSONField(default=list, blank=True)
    list_mode = models.CharField(max_length=8, choices=ListMode.choices, default=ListMode.FIXED)
    lists = models.ManyToManyField(MailingList, related_name="+", blank=True)
    # The words next to the consent box. Notices are immutable: editing the words makes a new
    # version and points the form at it, so old consent records keep the words they were given.
    notice = models.ForeignKey(ConsentNotice, on_delete=models.PROTECT, related_name="+")
    # An optional second notice, for activity tracking (purpose "tracking"): its own box on the
    # page, its own consent record with these exact words; audience.queries.has_tracking_consent
    # is what the tracking package reads.
    tracking_notice = models.ForeignKey(
        ConsentNotice, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    success_message = models.TextField(blank=True)
    redirect_url = models.URLField(max_length=500, blank=True)
    # Origins ("https://www.example.com") whose pages may post to the form and read the JSON
    # answer; a redirect may go only to one of their hosts.
    allowed_origins = models.JSONField(default=list, blank=True)
    language = models.CharField(max_length=2, choices=Language.choices, default=Language.ENGLISH)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "slug"], name="form_slug_unique")
        ]

    def __str__(self):
        return self.name


class FormViews(models.Model):
    """How often a form's hosted page was shown per UTC day: the other half of the
    views-to-submissions conversion. A count, nothing about who looked."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    form = models.ForeignKey(Form, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    views = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["form", "day"], name="form_views_unique")]

    def __str__(self):
        return f"form {self.form_id} {self.day}: {self.views} views"


class Submission(models.Model):
    """One accepted submission of a form. Blocked ones (honeypot, rate limits, bad input) leave
    no row. The rows are what the per-address and per-IP limits count, so those limits hold
    across every web process."""

    class Outcome(models.TextChoices):
        SUBSCRIBED = "subscribed", "Subscribed"
        CONFIRMING = "confirming", "Waiting for confirmation"
        ALREADY = "already", "Already subscribed"
        # The address cannot be signed up by a form (erased, suppressed after a bounce or a
        # complaint, blocklisted): answered like any other, nothing subscribed.
        REFUSED = "refused", "Not mailable"
        # A resource or evaluation form sent without the box for the lists ticked: the
        # person asked for the resource or an evaluation, and joined no list.
        REQUESTED = "requested", "Asked, joined no list"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    form = models.ForeignKey(Form, on_delete=models.CASCADE, related_name="submissions")
    # Null after erasure (the row stays for the form's counts) or when nobody was subscribed.
    subscriber = models.ForeignKey(
        Subscriber, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    notice = models.ForeignKey(ConsentNotice, on_delete=models.PROTECT, related_name="+")
    # audience.emails.suppression_hash of the address: what the per-address limit counts.
    email_hash = models.CharField(max_length=64)
    # A keyed hash of the IP (signup.limits.ip_key): counted by the per-IP limit whatever the
    # privacy settings say about keeping the address itself.
    ip_key = models.CharField(max_length=64)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    page_url = models.CharField(max_length=500, blank=True)
    referrer = models.CharField(max_length=500, blank=True)
    # The name typed, held here until the person confirms by mail: the delivery engine puts a
    # subscriber's name in the To header, and a confirmation mail must not carry words a
    # stranger typed (actions.do_submit_form).
    name = models.CharField(max_length=200, blank=True)
    via = models.CharField(max_length=8)  # "page", "embed" or "json"
    # The activity-tracking box was ticked; confirmed with the sign-up when one is mailed.
    tracking = models.BooleanField(default=False)
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    created_at = models.DateTimeField(default=now)

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "email_hash", "created_at"], name="submission_email"),
            models.Index(fields=["workspace", "ip_key", "created_at"], name="submission_ip"),
            # Newest-first keyset pages of one form (API) and its per-day counts.
            models.Index(fields=["form", "-id"], name="submission_form_newest"),
        ]

    def __str__(self):
        return f"submission {self.pk} ({self.outcome})"


class Confirmation(models.Model):
    """One double opt-in mail and what confirming it does. A row is made only when a mail goes
    out, so counting rows per address counts confirmation mails (the list-bombing limits).

    Status: pending -> confirmed (the person pressed Confirm within CONFIRM_DAYS).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for the person"
        CONFIRMED = "confirmed", "Confirmed"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="+")
    email_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=now)  # when the mail was queued
    expires_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["workspace", "email_hash", "created_at"], name="confirmation_email"
            ),
        ]

    def __str__(self):
        return f"confirmation {self.pk} ({self.status})"


class ConfirmationList(models.Model):
    """A list that confirming will confirm, and the submission that asked for it (its form,
    notice, IP and user agent go into the consent record). `renew` marks a membership that is
    not written until the person confirms: they had left the list, or the address was on the
    do-not-mail list, and only they may undo that."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    confirmation = models.ForeignKey(Confirmation, on_delete=models.CASCADE, related_name="items")
    mailing_list = models.ForeignKey(MailingList, on_delete=models.CASCADE, related_name="+")
    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="+")
    renew = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["confirmation", "mailing_list"], name="confirmation_list_unique"
            )
        ]

    def __str__(self):
        return f"confirmation {self.confirmation_id} list {self.mailing_list_id}"


class WelcomeMessage(models.Model):
    """What a list sends a person once they confirmed joining it through a form (optional).
    A Markdown template with the same personalisation as campaigns ({{ subscriber.first_name }}),
    sent as a transactional message."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    mailing_list = models.OneToOneField(MailingList, on_delete=models.CASCADE, related_name="+")
    subject = models.CharField(max_length=200)
    body = models.TextField()
    updated_at = models.DateTimeField(default=now)

    def __str__(self):
        return f"welcome message of list {self.mailing_list_id}"


from .models_altcha import FormProtection, SolvedChallenge  # noqa: E402  (ALTCHA)
from .models_leads import EvaluationSetup, Lead, LeadEvent  # noqa: E402
from .models_resources import Resource, ResourceDownload, ResourceForm, ResourceGrant  # noqa: E402
from .models_webinars import Event, Registration, Reminder, WebinarForm  # noqa: E402

__all__ = [
    "Confirmation",
    "ConfirmationList",
    "EvaluationSetup",
    "Event",
    "Form",
    "FormProtection",
    "FormViews",
    "Lead",
    "LeadEvent",
    "Registration",
    "Reminder",
    "Resource",
    "ResourceDownload",
    "ResourceForm",
    "ResourceGrant",
    "SolvedChallenge",
    "Submission",
    "WebinarForm",
    "WelcomeMessage",
]
