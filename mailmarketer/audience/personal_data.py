"""Where a person's data lives: every model that references a subscriber registers here how its
rows are exported (the data-subject access request) and how they go on erasure.

A test walks every installed model: one with a foreign key to Subscriber that is not registered
fails it, so a later table cannot be forgotten by export or erasure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db import models


@dataclass(frozen=True)
class Holder:
    model: type[models.Model]
    section: str  # key in the export document
    export: Callable  # (subscriber) -> list[dict] | dict
    # How rows go on erasure. "cascade": deleted with the subscriber row (on_delete=CASCADE);
    # a callable(subscriber) runs before the subscriber row is deleted (e.g. to anonymise rows
    # kept for aggregates).
    erase: str | Callable = "cascade"


REGISTRY: dict[str, Holder] = {}


def register(model, *, section: str, export: Callable, erase: str | Callable = "cascade"):
    REGISTRY[model._meta.label] = Holder(model, section, export, erase)


def _plain(value):
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "hex") and not isinstance(value, (bytes, str)):
        return str(value)
    return value


def rows_as_dicts(queryset, fields: list[str]) -> list[dict]:
    return [{f: _plain(v) for f, v in row.items()} for row in queryset.values(*fields)]


def export_document(subscriber) -> dict:
    document = {}
    for holder in REGISTRY.values():
        document[holder.section] = holder.export(subscriber)
    return document


def erase_hooks(subscriber) -> None:
    for holder in REGISTRY.values():
        if callable(holder.erase):
            holder.erase(subscriber)


def register_core() -> None:
    from .models import ConsentRecord, Subscriber, Subscription

    register(
        Subscriber,
        section="profile",
        export=lambda s: rows_as_dicts(
            Subscriber.objects.filter(pk=s.pk),
            ["uuid", "email", "name", "status", "attributes", "source", "created_at", "updated_at"],
        )[0],
    )
    register(
        Subscription,
        section="subscriptions",
        export=lambda s: rows_as_dicts(
            Subscription.objects.filter(subscriber=s).order_by("created_at"),
            [
                "mailing_list__name",
                "mailing_list__slug",
                "status",
                "status_reason",
                "created_at",
                "confirmed_at",
                "unsubscribed_at",
            ],
        ),
    )
    register(
        ConsentRecord,
        section="consent",
        export=lambda s: rows_as_dicts(
            ConsentRecord.objects.filter(subscriber=s).order_by("at", "id"),
            [
                "at",
                "purpose",
                "action",
                "notice__name",
                "notice__version",
                "notice__text",
                "notice__sha256",
                "source_type",
                "source_label",
                "ip",
                "user_agent",
                "confirmed_at",
            ],
        ),
    )
