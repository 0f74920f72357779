"""Reads for the webinar pages and API: events of a workspace, their registrants."""

from __future__ import annotations

from django.db.models import Count, Q

from .models_webinars import Event, Registration

Status = Registration.Status


def events_for(workspace):
    """Newest start first, with the seats taken and the waiting list's length."""
    return (
        Event.objects.filter(workspace=workspace)
        .annotate(
            seats_taken=Count("registrations", filter=Q(registrations__status=Status.REGISTERED)),
            waiting=Count("registrations", filter=Q(registrations__status=Status.WAITLISTED)),
        )
        .order_by("-starts_at", "-pk")
    )


def _id(value) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**63 else None  # beyond a bigint: no such row


def get_event(workspace, event_id) -> Event | None:
    key = _id(event_id)
    if key is None:
        return None
    return events_for(workspace).select_related("workspace").filter(pk=key).first()


def registrations_of(event: Event, status: str | None = None):
    """In registration order (the waiting list's order), each with its subscriber."""
    qs = Registration.objects.filter(event=event, workspace_id=event.workspace_id)
    if status:
        qs = qs.filter(status=status)
    return qs.select_related("subscriber").order_by("registered_at", "pk")


def get_registration(event: Event, registration_id) -> Registration | None:
    key = _id(registration_id)
    return registrations_of(event).filter(pk=key).first() if key else None
