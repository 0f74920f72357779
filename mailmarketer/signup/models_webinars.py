"""Webinar models: events, the people registered for them, and the reminders owed to them
(docs/webinars.md). Writes go through webinars.py.

Registrations and attendance are facts other features segment on ("registered for event X",
"attended event X"): one row per (event, subscriber), kept with its status, its time and
whether the person attended, rather than folded into counters.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils.timezone import now

from mailmarketer.accounts.models import Workspace
from mailmarketer.audience.models import Subscriber

from .models import Form

# Minutes before the start: a day and an hour, unless the staff choose others.
DEFAULT_REMINDER_OFFSETS = [24 * 60, 60]


def default_offsets() -> list[int]:
    return list(DEFAULT_REMINDER_OFFSETS)


class Event(models.Model):
    """One webinar. `starts_at` is the UTC instant; `timezone` the zone (an IANA name) the
    staff chose it in, which the pages, the mails and the invitation show it in.

    Status: scheduled -> cancelled (staff; final). `sequence` counts the changes a calendar
    must take over (RFC 5545 SEQUENCE): it grows by one each time the event moves and when it
    is cancelled, so a calendar replaces its copy instead of keeping the old one.
    """

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        CANCELLED = "cancelled", "Cancelled"

    class Language(models.TextChoices):
        ENGLISH = "en", "English"
        GERMAN = "de", "German"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    starts_at = models.DateTimeField()
    timezone = models.CharField(max_length=64, default="UTC")
    duration_minutes = models.PositiveIntegerField(default=60)
    # Shown only to registrants: in their mails and invitation, never on the public page.
    join_url = models.URLField(max_length=500, blank=True)
    capacity = models.PositiveIntegerField()
    # Places on the waiting list once the seats are taken; 0: none, the event is then full.
    waitlist_capacity = models.PositiveIntegerField(default=0)
    # None: registration stays open until the start.
    registration_closes_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SCHEDULED)
    sequence = models.PositiveIntegerField(default=0)
    # Minutes before the start at which each registrant is reminded.
    reminder_offsets = models.JSONField(default=default_offsets, blank=True)
    # The language of the mails (the form's page has its own).
    language = models.CharField(max_length=2, choices=Language.choices, default=Language.ENGLISH)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        indexes = [models.Index(fields=["workspace", "-starts_at"], name="event_ws_start")]

    def __str__(self):
        return self.title


class WebinarForm(models.Model):
    """The event a webinar form registers people for (one event per form)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    form = models.OneToOneField(Form, on_delete=models.CASCADE, related_name="webinar")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="forms")

    def __str__(self):
        return f"form {self.form_id} -> event {self.event_id}"


class Registration(models.Model):
    """One person's place at one event.

    Status: registered (a seat) | waitlisted (in order of registered_at) -> cancelled (the
    person's link, or staff); waitlisted -> registered when a seat frees (promotion, oldest
    first); cancelled -> registered | waitlisted when the person registers again.
    """

    class Status(models.TextChoices):
        REGISTERED = "registered", "Registered"
        WAITLISTED = "waitlisted", "On the waiting list"
        CANCELLED = "cancelled", "Cancelled"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="registrations")
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="+")
    # Names the registration in its invitation (UID) and its cancel link: never the address.
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    status = models.CharField(max_length=10, choices=Status.choices)
    # The name typed on the form: shown to staff, never put into a mail (a stranger may type
    # anyone's address and any words into a public form).
    name = models.CharField(max_length=200, blank=True)
    form = models.ForeignKey(
        Form, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    registered_at = models.DateTimeField(default=now)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    attended = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "subscriber"], name="registration_unique")
        ]
        indexes = [
            # Seats taken, and the waiting list in order (promotion takes the first).
            models.Index(fields=["event", "status", "registered_at"], name="registration_queue"),
            # "Registered for / attended event X" segments start from the person.
            models.Index(fields=["workspace", "subscriber"], name="registration_person"),
        ]

    def __str__(self):
        return f"registration {self.pk} ({self.status})"


class Reminder(models.Model):
    """One reminder owed to one registrant: at `offset_minutes` before the start of the event
    as it was at `sequence` (moving the event replaces the unsent ones). The worker claims a
    due one by setting `sent_at` with a conditional UPDATE, so it goes at most once."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    registration = models.ForeignKey(
        Registration, on_delete=models.CASCADE, related_name="reminders"
    )
    offset_minutes = models.PositiveIntegerField()
    sequence = models.PositiveIntegerField(default=0)
    due_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    # Claimed but not mailed: the event had started, or the address could not be mailed.
    skipped = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["registration", "offset_minutes", "sequence"], name="reminder_unique"
            )
        ]
        indexes = [
            # What the worker asks each round: the oldest unsent due reminder.
            models.Index(fields=["due_at"], name="reminder_due", condition=Q(sent_at__isnull=True)),
        ]

    def __str__(self):
        return f"reminder {self.pk} ({self.offset_minutes} min)"
