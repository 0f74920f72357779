"""Facts per person (DESIGN.md section 5, "Tracking"): one row per (workspace, subscriber,
kind, object) with the first time, the last time and a count, and one row per day for rules
that ask "N times in D days". Events are the record of each hit (tracking, signup); facts are
what behaviour segments read, so "who clicked campaign X in the last 30 days" is one range of
one index, whatever the number of events.

They live in audience, not tracking, because both ends need them from below: segments are
audience's and may not import tracking, and signup (webinar registrations and attendance,
downloads, submissions) sits beside tracking on its layer and may not import it either.
Written only by facts.record_facts (an upsert that adds counts).
"""

from __future__ import annotations

from django.db import models

from mailmarketer.accounts.models import Workspace

from .models import Subscriber

# The longest object key: "<type>:<id or path>"; a longer path is cut by facts.object_key.
OBJECT_KEY_MAX = 255


class FactKind(models.TextChoices):
    OPENED = "opened", "Opened"  # object: campaign:<id>
    CLICKED = "clicked", "Clicked"  # object: campaign:<id> and link:<id>
    VISITED = "visited", "Visited"  # object: site:<id> and path:<site id>:<path>
    REGISTERED = "registered", "Registered"  # object: event:<id>
    ATTENDED = "attended", "Attended"  # object: event:<id>
    DOWNLOADED = "downloaded", "Downloaded"  # object: resource:<id>
    SUBMITTED = "submitted", "Submitted"  # object: form:<id>


class Fact(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=12, choices=FactKind.choices)
    object_key = models.CharField(max_length=OBJECT_KEY_MAX)
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()
    count = models.PositiveIntegerField(default=1)

    class Meta:
        constraints = [
            # The upsert's conflict target (facts.py), and a person's facts for the timeline.
            models.UniqueConstraint(
                fields=["workspace", "subscriber", "kind", "object_key"],
                name="audience_fact_one_per_object",
            ),
        ]
        indexes = [
            # "who <kind> <object> since T": one index range.
            models.Index(
                fields=["workspace", "kind", "object_key", "last_at"], name="audience_fact_segment"
            ),
        ]

    def __str__(self):
        return f"{self.kind} {self.object_key} x{self.count}"


class FactDay(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=12, choices=FactKind.choices)
    object_key = models.CharField(max_length=OBJECT_KEY_MAX)
    day = models.DateField()  # UTC
    count = models.PositiveIntegerField(default=1)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "subscriber", "kind", "object_key", "day"],
                name="audience_factday_one_per_day",
            ),
        ]
        indexes = [
            models.Index(
                fields=["workspace", "kind", "object_key", "day"], name="audience_factday_segment"
            ),
        ]

    def __str__(self):
        return f"{self.kind} {self.object_key} {self.day} x{self.count}"
