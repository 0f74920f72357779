"""Where a person's data lives: every model that references a subscriber registers here how its
rows are exported (the data-subject access request) and how they go on erasure; every kind of
file under the data directory that can name a person registers how erasure reaches it.

A test walks every installed model: one with a foreign key to Subscriber that is not registered
fails it, so a later table cannot be forgotten by export or erasure. Another erases a person
named in every registered kind of file and searches the whole data directory for them.

Files, and what erasure does to each (register_files):
- import error reports (var/imports/<id>/errors.csv): the rows naming the address are cut out
  once the erasure commits; a report still being written by its job is left to the retention
  (MM_IMPORT_FILE_RETENTION_DAYS after the import ended), by which time the person is
  suppressed. A failed import's upload, kept for resuming, is not rewritten (a .csv.gz or .zip
  as uploaded): it goes with the same retention.
- the outbox (var/outbox/ws-<id>/*.eml): every message of the workspace naming the address is
  deleted. A sent message cannot be edited into one that was not sent; deleting it is the
  honest erasure.
Files are not part of the access export: what they hold came from the staff's own uploads or
from the rows already exported.
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

# name -> callable(workspace, address): removes what names the address from that kind of file.
# Runs after the erasure has committed (a file cannot be rolled back with a transaction).
FILES: dict[str, Callable] = {}


def register(model, *, section: str, export: Callable, erase: str | Callable = "cascade"):
    REGISTRY[model._meta.label] = Holder(model, section, export, erase)


def register_files(name: str, *, erase: Callable) -> None:
    FILES[name] = erase


def erase_from_files(workspace, address: str) -> None:
    for erase in FILES.values():
        erase(workspace, address)


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
    from mailmarketer.lib import outbox

    from .importing.jobs import erase_from_reports
    from .models import ConsentRecord, Reconsent, Subscriber, Subscription

    register_files("import error reports", erase=erase_from_reports)
    register_files(
        "outbox",
        erase=lambda workspace, address: outbox.remove_messages_naming(
            outbox.workspace_scope(workspace.pk), address
        ),
    )

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
    register(
        Reconsent,
        section="sign_up_again",
        export=lambda s: rows_as_dicts(
            Reconsent.objects.filter(subscriber=s).order_by("created_at", "id"),
            ["created_at", "status", "confirmed_at"],
        ),
    )
