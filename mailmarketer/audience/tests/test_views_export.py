"""Export of a list: who may (audience.export and seeing personal data), CSV and JSON streamed
row by row, one audit row per export, and CSV cells neutralised against formula injection."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.urls import reverse

from mailmarketer.accounts import permissions
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.accounts.permissions import Role
from mailmarketer.audience import actions, exporting
from mailmarketer.audience.actions import Reason
from mailmarketer.audience.segments.actions import do_create_segment
from mailmarketer.testing import client_for, make_member, make_user


def url(name, ws="acme"):
    return reverse(name, kwargs={"ws": ws})


def download(client, mailing_list, fmt="csv", members="active", ws="acme"):
    return client.post(
        url("audience-export-download", ws=ws),
        {"source": f"list:{mailing_list.pk}", "members": members, "format": fmt},
    )


def read_csv(response) -> list[dict]:
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith(exporting.BOM)
    return list(csv.DictReader(io.StringIO(text[1:])))


@pytest.fixture
def members(personas, staff, news):
    """Three on the list: one confirmed with attributes, one with a formula for a name, one who
    unsubscribed; and one person not on the list at all."""
    people = {}
    for key, email, name, attributes in [
        ("ann", "ann@example.com", "Ann", {"city": "Oslo", "age": 30, "vip": True}),
        ("evil", "eve@example.com", '=HYPERLINK("http://x.test","click")', {"note": "+1 call"}),
        ("gone", "gone@example.com", "Gone", {"email": "other@example.com"}),
        ("off", "off@example.com", "Not on list", {"secret": "x"}),
    ]:
        people[key] = actions.do_create_subscriber(
            personas.acme, email=email, name=name, attributes=attributes, actor=staff
        )
    for key in ("ann", "evil", "gone"):
        actions.do_subscribe(people[key], [news], actor=staff, reason=Reason.BY_ADMIN)
    actions.do_unsubscribe(people["gone"], [news], actor=staff, reason=Reason.BY_ADMIN)
    return people


# -- the writer (exporting.py) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "written"),
    [
        ('=HYPERLINK("http://x.test","click")', '\'=HYPERLINK("http://x.test","click")'),
        ("+1 call", "'+1 call"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tindented", "'\tindented"),
        ("\rreturn", "'\rreturn"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_it_neutralises_cells_a_spreadsheet_would_run(given, written):
    assert exporting.neutralise(given) == written
    assert exporting.csv_cell(given) == written


def test_it_writes_numbers_booleans_and_nested_values_safely():
    assert exporting.csv_cell(-5) == "-5"  # a number, not a formula
    assert exporting.csv_cell(2.5) == "2.5"
    assert exporting.csv_cell(True) == "true"
    assert exporting.csv_cell(None) == ""
    assert exporting.csv_cell({"b": 1, "a": "x"}) == '{"a": "x", "b": 1}'
    assert exporting.csv_cell(["-1"]) == '["-1"]'


def test_it_prefixes_attribute_columns_named_like_fixed_columns():
    assert exporting.attribute_header("email") == "attribute:email"
    assert exporting.attribute_header("subscription_status") == "attribute:subscription_status"
    assert exporting.attribute_header("city") == "city"


def test_it_writes_one_attributes_column_when_told_to():
    row = ("u", "a@example.com", "A", "enabled", None, {"k": "=1"}, "confirmed", "by_admin")
    lines = list(exporting.csv_rows(iter([row]), None))
    assert lines[0] == (
        exporting.BOM + "uuid,email,name,status,created_at,attributes,"
        "subscription_status,subscription_reason\r\n"
    )
    assert next(csv.reader([lines[1]]))[5] == '{"k": "=1"}'


# -- who may export ------------------------------------------------------------------------------


def test_it_shows_the_export_form_with_the_workspaces_lists(bob_client, news, webinars):
    response = bob_client.get(url("audience-export"), {"list": news.pk})
    assert response.status_code == 200
    html = response.content.decode()
    assert f'<option value="list:{news.pk}" selected>News</option>' in html
    assert "Webinars" in html
    assert 'action="/app/acme/audience/export/download/"' in html


def test_it_forbids_an_analyst_to_export(carol_client, members, news):
    assert carol_client.get(url("audience-export")).status_code == 403
    response = download(carol_client, news)
    assert response.status_code == 403
    assert not response.streaming
    assert not AuditEvent.objects.filter(event="audience.exported").exists()


def test_it_needs_personal_data_access_as_well_as_the_export_permission(
    personas, news, monkeypatch
):
    """A role with audience.export but not audience.view_personal_data cannot export either."""
    analyst = permissions.ROLE_PERMISSIONS[Role.ANALYST]
    monkeypatch.setitem(
        permissions.ROLE_PERMISSIONS, Role.ANALYST, analyst | {permissions.AUDIENCE_EXPORT}
    )
    dave = make_user("dave@acme.test", "Dave")
    make_member(personas.acme, dave, Role.ANALYST)
    client = client_for(dave)
    response = client.get(url("audience-export"))
    assert response.status_code == 403
    assert "audience.view_personal_data" in response.content.decode()
    assert download(client, news).status_code == 403
    assert not AuditEvent.objects.filter(event="audience.exported").exists()


def test_it_does_not_export_another_workspaces_list(mallory_client, members, news):
    assert mallory_client.get(url("audience-export")).status_code == 404
    assert download(mallory_client, news).status_code == 404
    # acme's list id in her own workspace's export is not a list she can choose.
    response = download(mallory_client, news, ws="evil")
    assert response.status_code == 400
    assert not response.streaming
    assert "Select a valid choice" in response.content.decode()
    assert not AuditEvent.objects.filter(event="audience.exported").exists()


# -- CSV -----------------------------------------------------------------------------------------


def test_it_streams_a_csv_of_the_list_with_a_column_per_attribute(bob_client, members, news):
    response = download(bob_client, news)
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="news-active-')
    assert response["Cache-Control"] == "no-store"
    rows = read_csv(response)
    assert list(rows[0]) == [
        "uuid",
        "email",
        "name",
        "status",
        "created_at",
        "age",
        "city",
        "note",
        "vip",
        "subscription_status",
        "subscription_reason",
    ]
    by_email = {r["email"]: r for r in rows}
    assert set(by_email) == {"ann@example.com", "eve@example.com"}  # active members only
    ann = by_email["ann@example.com"]
    assert (ann["uuid"], ann["age"], ann["city"], ann["vip"]) == (
        str(members["ann"].uuid),
        "30",
        "Oslo",
        "true",
    )
    assert ann["subscription_status"] == "confirmed" and ann["note"] == ""


def test_it_neutralises_a_formula_in_a_name_and_an_attribute(bob_client, members, news):
    rows = read_csv(download(bob_client, news))
    eve = next(r for r in rows if r["email"] == "eve@example.com")
    assert eve["name"] == '\'=HYPERLINK("http://x.test","click")'
    assert eve["note"] == "'+1 call"


def test_it_exports_everyone_including_the_unsubscribed_when_asked(bob_client, members, news):
    rows = read_csv(download(bob_client, news, members="all"))
    gone = next(r for r in rows if r["email"] == "gone@example.com")
    assert (gone["subscription_status"], gone["subscription_reason"]) == (
        "unsubscribed",
        "by_admin",
    )
    # Its attribute "email" does not overwrite the address column.
    assert gone["attribute:email"] == "other@example.com"
    assert "off@example.com" not in {r["email"] for r in rows}
    confirmed = read_csv(download(bob_client, news, members="confirmed"))
    assert {r["email"] for r in confirmed} == {"ann@example.com", "eve@example.com"}


def test_it_falls_back_to_one_attributes_column_past_the_limit(
    bob_client, members, news, monkeypatch
):
    monkeypatch.setattr(exporting, "MAX_ATTRIBUTE_COLUMNS", 2)
    rows = read_csv(download(bob_client, news))
    assert "attributes" in rows[0] and "city" not in rows[0]
    ann = next(r for r in rows if r["email"] == "ann@example.com")
    assert json.loads(ann["attributes"]) == {"age": 30, "city": "Oslo", "vip": True}


def test_it_audits_each_export_once_before_the_first_byte(bob_client, personas, members, news):
    response = download(bob_client, news)
    (event,) = AuditEvent.objects.filter(event="audience.exported")  # before reading the body
    read_csv(response)
    assert AuditEvent.objects.filter(event="audience.exported").count() == 1
    assert event.workspace == personas.acme and event.actor_user == personas.bob
    assert event.new == {
        "source": "mailinglist",
        "id": news.pk,
        "name": "News",
        "format": "csv",
        "members": "active",
        "count": 2,
    }
    text = json.dumps(event.new) + event.object_repr
    assert "@example.com" not in text and "Ann" not in text


def test_it_reads_rows_in_chunks_while_streaming(bob_client, members, news, monkeypatch):
    """The rows come from a database iterator, consumed as the response is read."""
    from django.db.models.query import QuerySet

    seen = []
    original = QuerySet.iterator

    def spy(self, chunk_size=None):
        seen.append(chunk_size)
        return original(self, chunk_size=chunk_size)

    monkeypatch.setattr(QuerySet, "iterator", spy)
    response = download(bob_client, news)
    assert seen == [2000]
    assert len(read_csv(response)) == 2


# -- JSON ----------------------------------------------------------------------------------------


def test_it_streams_a_json_export_keeping_values_as_stored(bob_client, members, news):
    response = download(bob_client, news, fmt="json", members="all")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/json; charset=utf-8"
    document = json.loads(b"".join(response.streaming_content))
    assert document["format"] == "mailmarketer.audience-export.v1"
    assert document["source"] == {"type": "list", "name": "News", "slug": "news"}
    by_email = {s["email"]: s for s in document["subscribers"]}
    assert set(by_email) == {"ann@example.com", "eve@example.com", "gone@example.com"}
    assert by_email["ann@example.com"]["attributes"] == {"city": "Oslo", "age": 30, "vip": True}
    assert by_email["eve@example.com"]["name"] == '=HYPERLINK("http://x.test","click")'
    assert by_email["gone@example.com"]["subscription"] == {
        "status": "unsubscribed",
        "reason": "by_admin",
    }
    assert AuditEvent.objects.get(event="audience.exported").new["format"] == "json"


def test_it_writes_valid_json_for_an_empty_list(bob_client, webinars):
    document = json.loads(b"".join(download(bob_client, webinars, fmt="json").streaming_content))
    assert document["subscribers"] == []
    assert AuditEvent.objects.get(event="audience.exported").new["count"] == 0


def test_it_refuses_an_unknown_format_or_missing_list(bob_client, news):
    response = bob_client.post(
        url("audience-export-download"),
        {"source": f"list:{news.pk}", "members": "active", "format": "xls"},
    )
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    response = bob_client.post(url("audience-export-download"), {"format": "csv"})
    assert response.status_code == 400
    assert not AuditEvent.objects.filter(event="audience.exported").exists()


# -- segments ------------------------------------------------------------------------------------


@pytest.fixture
def oslo(personas, staff, members):
    rules = {
        "version": 1,
        "root": {
            "type": "group",
            "match": "any",
            "children": [
                {
                    "type": "attribute",
                    "name": "city",
                    "value_type": "string",
                    "op": "eq",
                    "value": "Oslo",
                },
                {"type": "field", "field": "name", "op": "eq", "value": "Not on list"},
            ],
        },
    }
    return do_create_segment(personas.acme, name="Oslo or off", rules=rules, actor=staff)


def test_it_offers_segments_beside_lists(bob_client, news, oslo):
    html = bob_client.get(url("audience-export"), {"segment": oslo.pk}).content.decode()
    assert '<optgroup label="Lists">' in html and '<optgroup label="Segments">' in html
    assert f'<option value="segment:{oslo.pk}" selected>Oslo or off</option>' in html


def test_it_exports_a_segments_members_without_list_columns(bob_client, members, oslo):
    response = bob_client.post(
        url("audience-export-download"),
        {"source": f"segment:{oslo.pk}", "members": "active", "format": "csv"},
    )
    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"].startswith(f'attachment; filename="segment-{oslo.pk}-')
    rows = read_csv(response)
    assert {r["email"] for r in rows} == {"ann@example.com", "off@example.com"}
    assert list(rows[0]) == [
        "uuid",
        "email",
        "name",
        "status",
        "created_at",
        "age",
        "city",
        "secret",
        "vip",
    ]
    event = AuditEvent.objects.get(event="audience.exported")
    assert event.new["source"] == "segment" and event.new["count"] == 2
    assert event.new["id"] == oslo.pk and event.new["members"] == "segment"


def test_it_exports_a_segment_as_json(bob_client, members, oslo):
    response = bob_client.post(
        url("audience-export-download"),
        {"source": f"segment:{oslo.pk}", "members": "active", "format": "json"},
    )
    document = json.loads(b"".join(response.streaming_content))
    assert document["source"] == {"type": "segment", "name": "Oslo or off", "id": oslo.pk}
    assert {s["email"] for s in document["subscribers"]} == {"ann@example.com", "off@example.com"}
    assert "subscription" not in document["subscribers"][0]


def test_it_does_not_export_another_workspaces_segment(mallory_client, oslo):
    response = mallory_client.post(
        url("audience-export-download", ws="evil"),
        {"source": f"segment:{oslo.pk}", "members": "active", "format": "csv"},
    )
    assert response.status_code == 400 and not response.streaming
    assert not AuditEvent.objects.filter(event="audience.exported").exists()


def test_it_explains_a_segment_whose_stored_rules_no_longer_hold(bob_client, oslo):
    type(oslo).objects.filter(pk=oslo.pk).update(rules={"version": 1, "root": {"type": "nope"}})
    response = bob_client.post(
        url("audience-export-download"),
        {"source": f"segment:{oslo.pk}", "members": "active", "format": "csv"},
    )
    assert response.status_code == 400 and not response.streaming
    assert "This segment cannot be exported: rules.root" in response.content.decode()
    assert not AuditEvent.objects.filter(event="audience.exported").exists()
