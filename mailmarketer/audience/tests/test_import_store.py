"""The import's bulk SQL (importing/store.py), its scratch index of addresses met (seen.py) and
its error report (report.py). The statements run on whichever database the suite runs on; CI
runs it on both."""

from __future__ import annotations

import uuid

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils.timezone import now

from mailmarketer.audience import actions
from mailmarketer.audience.emails import suppression_hash
from mailmarketer.audience.importing.report import ErrorReport, neutralise, rows_of
from mailmarketer.audience.importing.seen import SeenAddresses
from mailmarketer.audience.importing.store import (
    STAGE,
    Consent,
    Store,
    bulk_session,
    json_text,
)
from mailmarketer.audience.models import ConsentRecord, Subscriber, Subscription


@pytest.fixture
def store(personas):
    return Store(personas.acme.pk)


def test_it_inserts_people_the_orm_reads_back_alike(store, personas, staff):
    existing = actions.do_create_subscriber(personas.acme, email="old@example.com", actor=staff)
    at = now()

    with transaction.atomic():
        uuids = store.insert_people(
            [
                ("b@example.com", "b@example.com", "", "blocklisted", "{}"),
                (
                    "A@example.com",
                    "a@example.com",
                    "Ann",
                    "enabled",
                    json_text({"city": "Oslo", "age": 31}),
                ),
            ],
            source="import",
            at=at,
        )

    a = Subscriber.objects.get(email="A@example.com")
    b = Subscriber.objects.get(email="b@example.com")
    # Made in the order of their keys, after what was there; the uuids returned in row order.
    assert existing.pk < a.pk < b.pk
    assert [uuid.UUID(u) for u in uuids] == [b.uuid, a.uuid]
    assert (a.email, a.email_key, a.name, a.status, a.attributes) == (
        "A@example.com",
        "a@example.com",
        "Ann",
        "enabled",
        {"city": "Oslo", "age": 31},
    )
    assert (b.status, b.source, b.workspace_id) == ("blocklisted", "import", personas.acme.pk)
    assert a.created_at == at and a.updated_at == at
    assert isinstance(a.uuid, uuid.UUID) and a.uuid.version == 4 and a.uuid != b.uuid
    # No list given: no membership, no consent record.
    assert not Subscription.objects.filter(subscriber__in=[a, b]).exists()
    assert not ConsentRecord.objects.filter(subscriber__in=[a, b]).exists()
    # The next ordinary insert takes the next id.
    later = actions.do_create_subscriber(personas.acme, email="later@example.com", actor=staff)
    assert later.pk > b.pk


@pytest.mark.parametrize("with_notice", [True, False])
def test_it_subscribes_new_people_with_a_consent_record_each(
    store, personas, staff, news, with_notice
):
    other = actions.do_create_list(personas.acme, name="Offers", slug="offers", actor=staff)
    notice = actions.notice_for_text(personas.acme, "Import: a.csv", "I agree.")
    # Someone of the other workspace with the same address is not joined to.
    actions.do_create_subscriber(personas.evil, email="a@example.com", actor=staff)
    at = now()

    with transaction.atomic():
        store.insert_people(
            [
                ("a@example.com", "a@example.com", "Ann", "enabled", "{}"),
                ("b@example.com", "b@example.com", "", "enabled", "{}"),
            ],
            source="import",
            at=at,
            lists=[
                (news.pk, "email:news", "confirmed", at),
                (other.pk, "email:offers", "confirmed", at),
            ],
            consent=Consent(notice.pk if with_notice else None, "7", "Import: a.csv"),
        )
        # The staging table is emptied with each use: a second chunk adds only its own.
        store.insert_people(
            [("c@example.com", "c@example.com", "", "enabled", "{}")],
            source="import",
            at=at,
            lists=[(news.pk, "email:news", "unconfirmed", None)],
            consent=None,
        )

    # Nothing stays staged: no address is left in the connection's temporary table.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {STAGE}")  # noqa: S608 - a constant
        assert cursor.fetchone() == (0,)
    ann = Subscriber.objects.get(workspace=personas.acme, email="a@example.com")
    memberships = Subscription.objects.filter(workspace=personas.acme).order_by("pk")
    assert [(m.subscriber.email, m.mailing_list.slug, m.status) for m in memberships] == [
        ("a@example.com", "news", "confirmed"),
        ("b@example.com", "news", "confirmed"),
        ("a@example.com", "offers", "confirmed"),
        ("b@example.com", "offers", "confirmed"),
        ("c@example.com", "news", "unconfirmed"),
    ]
    first = memberships[0]
    assert (first.status_reason, first.confirmed_at, first.created_at, first.updated_at) == (
        "by_import",
        at,
        at,
        at,
    )
    assert first.unsubscribed_at is None and memberships[4].confirmed_at is None
    records = ConsentRecord.objects.filter(subscriber=ann).order_by("pk")
    assert [(r.purpose, r.mailing_list_id, r.action) for r in records] == [
        ("email:news", news.pk, "grant"),
        ("email:offers", other.pk, "grant"),
    ]
    record = records[0]
    assert (record.notice, record.source_type, record.source_id, record.source_label) == (
        notice if with_notice else None,
        "import",
        "7",
        "Import: a.csv",
    )
    assert (record.at, record.confirmed_at, record.ip, record.user_agent) == (at, at, None, "")
    assert record.workspace_id == personas.acme.pk
    assert ConsentRecord.objects.filter(workspace=personas.acme).count() == 4  # none for c


def test_new_uuids_are_random_version_4_uuids():
    ids = Store.new_uuids(2000)
    parsed = [uuid.UUID(hex=value) for value in ids]
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in parsed)
    assert all(u.hex == value for u, value in zip(parsed, ids, strict=True))
    assert len(set(ids)) == 2000


def test_it_fails_the_chunk_rather_than_reuse_an_address(store, personas, staff):
    actions.do_create_subscriber(personas.acme, email="taken@example.com", actor=staff)

    # The same address in another case is the same key: the unique index refuses it too.
    with pytest.raises(IntegrityError), transaction.atomic():
        store.insert_people(
            [("Taken@example.com", "taken@example.com", "", "enabled", "{}")],
            source="import",
            at=now(),
        )


def test_it_writes_memberships_and_consent_records(store, personas, staff, news):
    sub = actions.do_create_subscriber(personas.acme, email="a@example.com", actor=staff)
    notice = actions.notice_for_text(personas.acme, "Import: a.csv", "I agree.")
    at = now()

    with transaction.atomic():
        store.insert_subscriptions([(sub.pk, news.pk, "confirmed", at)], reason="by_import", at=at)
        store.insert_consents(
            [(sub.pk, news.pk, "email:news", "grant", at)],
            consent=Consent(notice.pk, "7", "Import: a.csv"),
            at=at,
        )

    membership = Subscription.objects.get(subscriber=sub)
    assert (membership.status, membership.status_reason, membership.confirmed_at) == (
        "confirmed",
        "by_import",
        at,
    )
    assert membership.unsubscribed_at is None and membership.workspace_id == personas.acme.pk
    record = ConsentRecord.objects.get(subscriber=sub)
    assert (record.purpose, record.action, record.notice, record.source_type) == (
        "email:news",
        "grant",
        notice,
        "import",
    )
    assert (record.source_id, record.source_label, record.confirmed_at) == (
        "7",
        "Import: a.csv",
        at,
    )
    assert record.ip is None and record.user_agent == "" and record.mailing_list == news


def test_it_looks_up_suppressions_subscribers_and_memberships_in_bulk(
    store, personas, staff, news, webinars
):
    a = actions.do_create_subscriber(personas.acme, email="a@example.com", actor=staff)
    actions.do_subscribe(a, [news], actor=staff, reason="by_admin")
    actions.do_add_suppression(personas.acme, email="gone@example.com", actor=staff)
    other = actions.do_create_subscriber(personas.evil, email="b@example.com", actor=staff)
    actions.do_add_suppression(personas.evil, email="evil@example.com", actor=staff)

    suppressed = store.suppressed(
        {suppression_hash(e) for e in ("gone@example.com", "evil@example.com", "a@example.com")}
    )
    existing = store.existing(["a@example.com", "b@example.com", "c@example.com"])
    memberships = store.memberships([a.pk, other.pk], [news.pk, webinars.pk])

    assert suppressed == {suppression_hash("gone@example.com"): "manual"}
    # By key, never another workspace's.
    assert {key: (sid, status) for key, (sid, status, _) in existing.items()} == {
        "a@example.com": (a.pk, "enabled")
    }
    assert str(existing["a@example.com"][2]).replace("-", "") == a.uuid.hex
    assert [(sid, lid, status) for _, sid, lid, status in memberships] == [
        (a.pk, news.pk, "confirmed")
    ]
    assert store.suppressed(set()) == {} and store.existing([]) == {}


def test_it_updates_profiles(store, personas, staff):
    a = actions.do_create_subscriber(
        personas.acme, email="a@example.com", name="Ann", attributes={"x": 1}, actor=staff
    )
    theirs = actions.do_create_subscriber(personas.evil, email="e@example.com", actor=staff)
    at = now()

    with transaction.atomic():
        store.update_profiles([(a.pk, "Anna", {"x": 2, "y": "z"})], at=at)
        store.update_profiles([(theirs.pk, "Hacked", {})], at=at)  # not this workspace's

    a.refresh_from_db()
    theirs.refresh_from_db()
    assert (a.name, a.attributes, a.updated_at) == ("Anna", {"x": 2, "y": "z"}, at)
    assert theirs.name == ""


def test_it_restores_the_connection_after_a_bulk_session(db):
    from django.db import connection

    def cache_size():
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA cache_size")
            return cursor.fetchone()[0]

    if connection.vendor != "sqlite":
        # On PostgreSQL the session is left exactly as it was: settings are per chunk instead.
        def settings_now():
            with connection.cursor() as cursor:
                cursor.execute("SELECT name, setting FROM pg_settings WHERE source = 'session'")
                return sorted(cursor.fetchall())

        before = settings_now()
        with bulk_session():
            assert settings_now() == before
        assert settings_now() == before
        return
    before = cache_size()
    with bulk_session():
        assert cache_size() == -64 * 1024
    assert cache_size() == before


# -- the index of addresses met ------------------------------------------------------------------


def test_it_finds_duplicates_within_and_across_chunks(tmp_path):
    with SeenAddresses(tmp_path / "seen.sqlite3") as seen:
        first = seen.duplicates([("a@x.io", 2), ("b@x.io", 3), ("a@x.io", 4), ("a@x.io", 5)])
        second = seen.duplicates([("c@x.io", 6), ("b@x.io", 7), ("C@x.io", 8), ("c@x.io", 9)])

    assert first == {4: 2, 5: 2}
    assert second == {7: 3, 9: 6}  # the local part keeps its case: C@x.io is someone else
    assert not (tmp_path / "seen.sqlite3").exists()


def test_it_keeps_the_first_line_whatever_the_order_given(tmp_path):
    with SeenAddresses(tmp_path / "seen.sqlite3") as seen:
        assert seen.duplicates([("a@x.io", 9), ("a@x.io", 3), ("a@x.io", 5)]) == {9: 3, 5: 3}


# -- the error report ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("ann@example.com", "ann@example.com"),
        ("a=b", "a=b"),
    ],
)
def test_it_neutralises_formulas(cell, shown):
    assert neutralise(cell) == shown


def test_it_cuts_the_report_back_to_the_last_committed_chunk(tmp_path):
    path = tmp_path / "errors.csv"
    with ErrorReport(path, ["email", "=name"]) as report:
        report.add([(3, "missing email address", ["", "=cmd()"])])
        report.committed(report.flush())
        report.add([(9, "lost with its chunk", ["x", "y"])])
        report.flush()
        report.rollback()
        report.add([(7, "duplicate in file (of line 2)", ["a@x.io", "A"])])
        size = report.flush()
        report.committed(size)
    with ErrorReport(path, ["email", "=name"], committed_size=size) as resumed:
        resumed.add([(8, "after the resume", ["b@x.io", "B"])])
        resumed.committed(resumed.flush())

    assert path.read_bytes().startswith(b"\xef\xbb\xbfline,reason,email,'=name\r\n")
    assert rows_of(path) == [
        ["line", "reason", "email", "'=name"],
        ["3", "missing email address", "", "'=cmd()"],
        ["7", "duplicate in file (of line 2)", "a@x.io", "A"],
        ["8", "after the resume", "b@x.io", "B"],
    ]


def test_a_lookup_value_with_a_line_break_is_refused_not_split(store, personas, staff):
    actions.do_create_subscriber(personas.acme, email="a@example.com", actor=staff)

    assert set(store.existing(["a@example.com", "b@example.com"])) == {"a@example.com"}
    if store.postgres:
        with pytest.raises(ValueError, match="line break"):
            store.existing(["x\na@example.com"])
    else:  # one placeholder a value: nothing to split
        assert store.existing(["x\na@example.com"]) == {}
