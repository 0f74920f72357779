"""The worker's website housekeeping: salts destroyed, IP addresses truncated, old hits and (on
PostgreSQL) old month partitions dropped, partitions made ahead; and erasure takes a person's
hits with them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.utils.timezone import now

from mailmarketer.audience import actions as audience
from mailmarketer.audience import personal_data
from mailmarketer.testing import SETUP
from mailmarketer.tracking import duties_web, partitions, web
from mailmarketer.tracking.models_web import IpMode, VisitorSalt, WebHit
from mailmarketer.tracking.testing_web import make_site


def run(duty):
    return duty.unthrottled()


def store(site, when, key, ip="203.0.113.77", **fields):
    web.store_rows([web.hit_row(site, at=when, key=key, path="/", ip=ip, ua="x/1", **fields)])


@pytest.fixture
def site(personas):
    return make_site(personas.acme, ip_mode=IpMode.KEEP, ip_days=2, retention_days=30)


def test_it_destroys_the_salts_of_past_days(db):
    today = now().date()
    VisitorSalt.objects.create(day=today - timedelta(days=1), salt="old")
    VisitorSalt.objects.create(day=today, salt="new")
    assert run(duties_web.destroy_old_salts_one) is True
    assert list(VisitorSalt.objects.values_list("salt", flat=True)) == ["new"]
    assert run(duties_web.destroy_old_salts_one) is False


def test_it_truncates_whole_ips_after_their_days(site):
    store(site, now() - timedelta(days=3), "old")
    store(site, now() - timedelta(hours=1), "new")
    assert run(duties_web.truncate_ips_one) is True
    ips = dict(WebHit.objects.values_list("key", "ip"))
    assert ips == {"old": "203.0.113.0", "new": "203.0.113.77"}
    assert run(duties_web.truncate_ips_one) is False
    site.ip_mode = IpMode.TRUNCATE  # no longer kept: truncated at once
    site.save()
    assert run(duties_web.truncate_ips_one) is True
    assert WebHit.objects.get(key="new").ip == "203.0.113.0"


def test_it_deletes_hits_past_their_sites_retention(site):
    store(site, now() - timedelta(days=40), "old")
    store(site, now() - timedelta(days=5), "kept")
    assert run(duties_web.delete_old_hits_one) is True
    assert list(WebHit.objects.values_list("key", flat=True)) == ["kept"]


def test_housekeeping_looks_for_work_at_most_every_few_minutes(site, monkeypatch):
    monkeypatch.setattr(duties_web, "_last", {})
    assert duties_web.destroy_old_salts_one() is False  # looked, found nothing
    VisitorSalt.objects.create(day=date(2020, 1, 1), salt="old")
    assert duties_web.destroy_old_salts_one() is False  # not yet time to look again
    monkeypatch.setattr(duties_web, "_last", {})
    assert duties_web.destroy_old_salts_one() is True


def test_erasure_takes_a_persons_hits_and_export_shows_them(site, personas):
    person = audience.do_create_subscriber(personas.acme, email="p@example.com", actor=SETUP)
    store(site, now(), "mine", subscriber_id=person.pk, title="Pricing")
    store(site, now(), "anonymous")
    exported = personal_data.REGISTRY["tracking.WebHit"].export(person)
    assert [row["title"] for row in exported] == ["Pricing"]
    audience.do_erase_subscriber(person, actor=SETUP)
    assert list(WebHit.objects.values_list("key", flat=True)) == ["anonymous"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions are PostgreSQL's")
def test_it_keeps_month_partitions_ahead_and_drops_old_ones(site):
    partitions._made.clear()
    partitions.make_ahead(date(2031, 1, 15))
    names = partitions.existing()
    assert {"tracking_webhit_p203101", "tracking_webhit_p203104"} <= names
    store(site, datetime(2031, 2, 3, tzinfo=UTC), "in-feb")
    store(site, datetime(1999, 1, 1, tzinfo=UTC), "long-ago")  # the default partition
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text, key FROM tracking_webhit ORDER BY key")
        assert cursor.fetchall() == [
            ("tracking_webhit_p203102", "in-feb"),
            ("tracking_webhit_default", "long-ago"),
        ]
    assert partitions.drop_older_than(datetime(2031, 3, 1, tzinfo=UTC)) is True
    assert "tracking_webhit_p203102" not in partitions.existing()
    assert list(WebHit.objects.values_list("key", flat=True)) == ["long-ago"]
