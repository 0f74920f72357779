"""Retention of email open and click events: the worker deletes events older than
TRACKING_EMAIL_EVENT_DAYS (MM_TRACKING_EMAIL_EVENT_DAYS, 395 by default), a batch at a time.

The reports read roll-ups (rollups.py), which stay, so a campaign's report is the same after
its events are gone; only the person's timeline and export lose what is older. An event the
roll-up has not counted yet is never deleted (only ids up to its cursor), so no figure changes.
Addresses were never kept whole (mail.stored_ip), so there is nothing to truncate later.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils.timezone import now

from .duties_web import _housekeeping
from .models import EmailEvent, RollupCursor
from .rollups import CURSOR

BATCH = 5_000


@_housekeeping
def delete_old_email_events_one() -> bool:
    """Worker duty: deletes one batch of events past retention; whether it found any."""
    counted = RollupCursor.objects.filter(name=CURSOR).values_list("last_id", flat=True).first()
    if not counted:
        return False
    cutoff = now() - timedelta(days=settings.TRACKING_EMAIL_EVENT_DAYS)
    old = list(
        EmailEvent.objects.filter(at__lt=cutoff, id__lte=counted).values_list("pk", flat=True)[
            :BATCH
        ]
    )
    if not old:
        return False
    EmailEvent.objects.filter(pk__in=old).delete()
    return True
