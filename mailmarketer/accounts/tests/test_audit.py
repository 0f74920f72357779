import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError

from mailmarketer.accounts.actions import audit
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent


@pytest.fixture
def event(personas):
    return audit(
        "workspace.updated",
        actor=Actor.for_user(personas.alice, "192.0.2.1"),
        workspace=personas.acme,
        obj=personas.acme,
        old={"name": "Acme"},
        new={"name": "Acme Inc"},
    )


def test_it_records_actor_workspace_object_ip_and_values(event, personas):
    row = AuditEvent.objects.get(pk=event.pk)
    assert row.actor_user == personas.alice
    assert row.actor_label == "alice@acme.test"
    assert row.workspace == personas.acme
    assert (row.object_type, row.object_id) == ("workspace", str(personas.acme.pk))
    assert row.ip == "192.0.2.1"
    assert row.old == {"name": "Acme"}
    assert row.new == {"name": "Acme Inc"}


def test_it_refuses_to_update_or_delete_through_the_orm(event):
    event.event = "tampered"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(event="tampered")
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).event == "workspace.updated"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger exists on PostgreSQL")
def test_it_refuses_raw_sql_updates_and_deletes_on_postgresql(event):
    for sql in (
        "UPDATE accounts_auditevent SET event = 'tampered' WHERE id = %s",
        "DELETE FROM accounts_auditevent WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).event == "workspace.updated"


def test_it_keeps_the_trail_when_a_user_is_deleted(event, personas):
    alice_id = personas.alice.pk
    personas.alice.delete()
    row = AuditEvent.objects.get(pk=event.pk)
    assert row.actor_user_id == alice_id  # no cascade, no SET NULL
    assert row.actor_label == "alice@acme.test"
