"""Anti-abuse limits, counted in the database (Submission and Confirmation rows) so that they
hold across every web process and survive restarts.

The per-address confirmation-mail limits are what protect a victim of list bombing (someone
signing a stranger's address up to every form they can find, so that the stranger drowns in
confirmation mails): whatever the forms, lists or IPs used, one address gets at most one
confirmation mail a day and three a month from a workspace.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Q
from django.utils.crypto import salted_hmac
from django.utils.timezone import now

from .models import Confirmation, Submission

# Accepted submissions per window. An office or a mobile carrier puts many people behind one
# IP; 30 an hour still stops a script. An address has no reason to sign up 5 times an hour.
PER_IP = 30
PER_ADDRESS = 5
WINDOW = timedelta(hours=1)

MAIL_GAP = timedelta(hours=24)  # at most one confirmation mail per address per day ...
MAILS_PER_MONTH = 3  # ... and this many in MONTH
MONTH = timedelta(days=30)


def ip_key(ip: str | None) -> str:
    """A keyed hash of the IP: counts submissions from one address without keeping it (the
    privacy settings may forbid that), and without a table of hashes anyone could reverse by
    hashing the IPv4 space."""
    return salted_hmac("mailmarketer.signup.ip", ip or "-", algorithm="sha256").hexdigest()


def over_limit(
    workspace, *, email_hash: str, ip: str | None = None, key: str | None = None, at=None
) -> bool:
    """Whether the submissions accepted in the WINDOW before `at` (now) reach a limit; the IP
    as itself or as its `key`."""
    # Both counts in one query (one round trip on every submission).
    key = key or ip_key(ip)
    counts = Submission.objects.filter(
        Q(ip_key=key) | Q(email_hash=email_hash),
        workspace=workspace,
        created_at__gte=(at or now()) - WINDOW,
    ).aggregate(
        from_ip=Count("pk", filter=Q(ip_key=key)),
        for_address=Count("pk", filter=Q(email_hash=email_hash)),
    )
    return over(counts["from_ip"], counts["for_address"])


def over(from_ip: int, for_address: int) -> bool:
    """Whether these counts (accepted submissions within WINDOW) reach a limit."""
    return from_ip >= PER_IP or for_address >= PER_ADDRESS


def may_mail(workspace, email_hash: str) -> bool:
    """Whether a new confirmation mail may go to this address now."""
    mails = Confirmation.objects.filter(
        workspace=workspace, email_hash=email_hash, created_at__gte=now() - MONTH
    ).values_list("created_at", flat=True)
    stamps = list(mails)
    if len(stamps) >= MAILS_PER_MONTH:
        return False
    return not any(stamp >= now() - MAIL_GAP for stamp in stamps)
