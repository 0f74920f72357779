"""Leads: what an `evaluation` form makes. A lead names the person (a subscriber), the product
or plan asked about, their company and message; staff move it through its statuses, assign it
and keep notes, and every change is a LeadEvent (who, when, what). The one writer is
signup/leads.py."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.timezone import now

from mailmarketer.accounts.models import Workspace
from mailmarketer.audience.models import Subscriber

from .models import Form, Submission

MESSAGE_LIMIT = 2000  # characters of the message; longer is refused, not cut
NOTES_LIMIT = 10000


class Lead(models.Model):
    class Status(models.TextChoices):
        NEW = "new", "New"
        CONTACTED = "contacted", "Contacted"
        QUALIFIED = "qualified", "Qualified"
        DISQUALIFIED = "disqualified", "Disqualified"

    # The only moves there are (leads.do_update_lead refuses any other): a new lead is
    # contacted, then qualified or not; one that is plainly spam may be disqualified at once.
    # Qualified and disqualified are final.
    TRANSITIONS = {
        Status.NEW: frozenset({Status.CONTACTED, Status.DISQUALIFIED}),
        Status.CONTACTED: frozenset({Status.QUALIFIED, Status.DISQUALIFIED}),
        Status.QUALIFIED: frozenset(),
        Status.DISQUALIFIED: frozenset(),
    }

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="+")
    form = models.ForeignKey(
        Form, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    submission = models.ForeignKey(
        Submission, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    product = models.CharField(max_length=200)
    company = models.CharField(max_length=200, blank=True)
    message = models.TextField(blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.NEW)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "-id"], name="lead_newest"),
            models.Index(fields=["workspace", "status", "-id"], name="lead_status"),
        ]

    def __str__(self):
        return f"lead {self.pk} ({self.status})"


class LeadEvent(models.Model):
    """One change of a lead: created, status, assignee or notes; who made it and when."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=now)
    actor = models.CharField(max_length=200)  # the actor's label (a user's email, "form x")
    field = models.CharField(max_length=20)  # "created", "status", "assignee", "notes"
    old = models.TextField(blank=True)
    new = models.TextField(blank=True)

    def __str__(self):
        return f"lead {self.lead_id} {self.field}: {self.old} -> {self.new}"


class EvaluationSetup(models.Model):
    """What an `evaluation` form offers and whom it tells: the products or plans a person may
    ask about, the teammate new leads go to, and who is mailed when nobody is assigned."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    form = models.OneToOneField(Form, on_delete=models.CASCADE, related_name="evaluation_setup")
    products = models.JSONField(default=list)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # User ids of the workspace's members mailed about a new lead when it has no assignee.
    recipients = models.JSONField(default=list, blank=True)

    def __str__(self):
        return f"evaluation setup of form {self.form_id}"
