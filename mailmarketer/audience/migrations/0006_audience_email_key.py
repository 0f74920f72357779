"""One person per address, whatever its case: Subscriber.email_key (the whole address
lower-cased, emails.email_key) replaces the address itself as what is unique per workspace.

Before the new constraint can hold, people who were stored twice under addresses that differ
only in case (`ANNA@beispiel.de`, `anna@beispiel.de`: two subscribers until now, both mailed)
are merged into the oldest of them (merge_case_duplicates). The survivor keeps its uuid and
takes over from each duplicate:
- memberships: where both are on a list, the stronger status wins, unsubscribed over confirmed
  over unconfirmed (someone who unsubscribed under either spelling has unsubscribed);
- the consent ledger, whole (rows are moved, never rewritten);
- the delivery ledger: rows are moved, except where both were sent the same campaign; the
  duplicate's row then stays for the campaign's totals without a subscriber, as after erasure;
- attributes, the newer profile's value per name (by updated_at; there is no time per value),
  the newer non-empty name, and a blocklisting by either;
and one audit row per merge names both uuids (never the address).

Suppression needs nothing: its hash has always been taken over the lower-cased address.

The search trigram index (0004) is over UPPER(email), which is unchanged: search and segments
match case-insensitively on the address as typed.
"""

from django.db import migrations, models

from mailmarketer.audience.emails import email_key

# unsubscribed beats confirmed beats unconfirmed
STRENGTH = {"unconfirmed": 0, "confirmed": 1, "unsubscribed": 2}


def _non_ascii(connection) -> tuple[str, str]:
    """A condition (and its parameter) true of addresses holding other than ASCII characters."""
    if connection.vendor == "postgresql":
        return "email ~ %s", "[^\\x01-\\x7f]"
    return "email GLOB %s", "*[^\x01-\x7f]*"


def _candidates(Subscriber, connection) -> dict[tuple[int, str], list[int]]:
    """{(workspace id, key): [subscriber ids]} of the groups sharing a key, without reading
    every row into Python. The database's LOWER finds the ASCII case-duplicates (on SQLite it
    folds nothing else); addresses holding other characters are few, and Python's lower()
    groups those."""
    table = connection.ops.quote_name(Subscriber._meta.db_table)
    other, pattern = _non_ascii(connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, workspace_id, email FROM {table} WHERE {other} "  # noqa: S608 - identifiers from the model
            f"OR (workspace_id, LOWER(email)) IN (SELECT workspace_id, LOWER(email) FROM {table} "
            "GROUP BY workspace_id, LOWER(email) HAVING COUNT(*) > 1)",
            [pattern],
        )
        rows = cursor.fetchall()
    groups: dict[tuple[int, str], list[int]] = {}
    for sid, workspace_id, email in rows:
        groups.setdefault((workspace_id, email_key(email)), []).append(sid)
    return {key: ids for key, ids in groups.items() if len(ids) > 1}


def _merge(apps, survivor, duplicate) -> None:
    Subscription = apps.get_model("audience", "Subscription")
    ConsentRecord = apps.get_model("audience", "ConsentRecord")
    Delivery = apps.get_model("delivery", "Delivery")
    AuditEvent = apps.get_model("accounts", "AuditEvent")

    theirs = {s.mailing_list_id: s for s in Subscription.objects.filter(subscriber=duplicate)}
    ours = {s.mailing_list_id: s for s in Subscription.objects.filter(subscriber=survivor)}
    for list_id, membership in theirs.items():
        kept = ours.get(list_id)
        if kept is None:
            Subscription.objects.filter(pk=membership.pk).update(subscriber=survivor)
            continue
        if STRENGTH[membership.status] > STRENGTH[kept.status]:
            Subscription.objects.filter(pk=kept.pk).update(
                status=membership.status,
                status_reason=membership.status_reason,
                updated_at=membership.updated_at,
                confirmed_at=membership.confirmed_at or kept.confirmed_at,
                unsubscribed_at=membership.unsubscribed_at,
            )
        Subscription.objects.filter(pk=membership.pk).delete()

    ConsentRecord.objects.filter(subscriber=duplicate).update(subscriber=survivor)

    both = Delivery.objects.filter(subscriber=survivor).values("campaign_id")
    Delivery.objects.filter(subscriber=duplicate, campaign_id__in=both).update(subscriber=None)
    Delivery.objects.filter(subscriber=duplicate).update(subscriber=survivor)

    older, newer = sorted([survivor, duplicate], key=lambda s: (s.updated_at, s.pk))
    survivor.attributes = {**(older.attributes or {}), **(newer.attributes or {})}
    survivor.name = newer.name or older.name
    if duplicate.status == "blocklisted":
        survivor.status = "blocklisted"
    survivor.updated_at = max(survivor.updated_at, duplicate.updated_at)
    survivor.save(update_fields=["attributes", "name", "status", "updated_at"])

    AuditEvent.objects.create(
        workspace_id=survivor.workspace_id,
        actor_label="System (migration: one subscriber per address, whatever its case)",
        event="subscriber.merged",
        object_type="subscriber",
        object_id=str(survivor.pk),
        object_repr=f"subscriber {survivor.uuid}",
        old={"merged": str(duplicate.uuid)},
        new={"into": str(survivor.uuid)},
    )
    duplicate.delete()


def merge_case_duplicates(apps, schema_editor) -> None:
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        # Foreign keys are checked as each row changes, not queued for the commit: queued
        # checks would stop the constraint changes that follow in this transaction ("pending
        # trigger events").
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    Subscriber = apps.get_model("audience", "Subscriber")
    for ids in _candidates(Subscriber, connection).values():
        people = sorted(Subscriber.objects.filter(pk__in=ids), key=lambda s: (s.created_at, s.pk))
        survivor = people[0]
        for duplicate in people[1:]:
            _merge(apps, survivor, duplicate)
    fill_keys(apps, schema_editor)


def fill_keys(apps, schema_editor) -> None:
    """Every key: one statement for the ASCII addresses (nearly all; LOWER folds those as
    Python does), then one by one for the others."""
    connection = schema_editor.connection
    Subscriber = apps.get_model("audience", "Subscriber")
    table = connection.ops.quote_name(Subscriber._meta.db_table)
    other, pattern = _non_ascii(connection)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET email_key = LOWER(email)")  # noqa: S608 - identifiers from the model
        cursor.execute(f"SELECT id, email FROM {table} WHERE {other}", [pattern])  # noqa: S608 - identifiers from the model
        others = cursor.fetchall()
    for sid, email in others:
        Subscriber.objects.filter(pk=sid).update(email_key=email_key(email))


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_audit_append_only"),
        ("audience", "0005_lean_tenant_keys"),
        ("delivery", "0002_claim_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="subscriber",
            name="email_key",
            field=models.CharField(default="", editable=False, max_length=254),
            preserve_default=False,
        ),
        migrations.RunPython(merge_case_duplicates, migrations.RunPython.noop),
        migrations.RemoveConstraint(model_name="subscriber", name="subscriber_email_unique"),
        migrations.AddConstraint(
            model_name="subscriber",
            constraint=models.UniqueConstraint(
                fields=("workspace", "email_key"), name="subscriber_email_key_unique"
            ),
        ),
    ]
