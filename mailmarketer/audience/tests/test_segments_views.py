"""Segment pages: every route allowed, forbidden and closed to another workspace; the builder
without JavaScript (each edit a plain form post) and with htmx; the live count fragment."""

from __future__ import annotations

import json
import re

import pytest

from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience.models import Segment, Subscriber
from mailmarketer.audience.segments.actions import do_create_segment

BASE = "/app/acme/audience/segments/"


def tree(*children, match="all"):
    return {"version": 1, "root": {"type": "group", "match": match, "children": list(children)}}


DOMAIN = {"type": "field", "field": "email", "op": "ends_with", "value": "@example.com"}
ADDRESS = {"type": "field", "field": "email", "op": "eq", "value": "ann@example.com"}


@pytest.fixture
def people(personas):
    for email in ("ann@example.com", "bob@example.com", "cy@other.test"):
        Subscriber.objects.create(workspace=personas.acme, email=email)
    Subscriber.objects.create(workspace=personas.evil, email="zed@example.com")


@pytest.fixture
def segment(personas, staff, people):
    return do_create_segment(
        personas.acme, name="Example.com people", rules=tree(DOMAIN), actor=staff
    )


def count_in(response) -> int | None:
    match = re.search(r'class="seg-count">([\d,]+)<', response.content.decode())
    return int(match.group(1).replace(",", "")) if match else None


def form(tree_fields: dict, **extra) -> dict:
    return {"name": "", "description": "", **tree_fields, **extra}


ROOT = {"n-0-type": "group", "n-0-parent": "", "n-0-match": "all"}


# -- access ---------------------------------------------------------------------------------------


def routes(segment_id):
    return [
        ("get", BASE, 200, 200),
        ("get", f"{BASE}{segment_id}/", 200, 200),
        ("get", f"{BASE}{segment_id}/count/", 200, 200),
        ("post", f"{BASE}count/", 200, 200),
        ("get", f"{BASE}new/", 200, 403),
        ("post", f"{BASE}new/", 200, 403),
        ("post", f"{BASE}{segment_id}/edit/", 200, 403),
        ("get", f"{BASE}{segment_id}/delete/", 200, 403),
        ("post", f"{BASE}{segment_id}/delete/", 302, 403),
    ]


def test_it_allows_each_route_by_permission_and_hides_acme_from_mallory(
    segment, alice_client, carol_client, mallory_client
):
    for method, url, for_alice, for_carol in routes(segment.pk):
        data = form(ROOT, edit="refresh") if method == "post" else None
        # Carol (analyst) first: a refused delete must leave the segment for Alice's turn.
        assert getattr(carol_client, method)(url, data).status_code == for_carol, url
        assert getattr(mallory_client, method)(url, data).status_code == 404, url
        evil_url = url.replace("/app/acme/", "/app/evil/")
        if str(segment.pk) in url:
            # Her own workspace's URL with acme's segment id: still not found.
            assert getattr(mallory_client, method)(evil_url, data).status_code == 404, evil_url
        assert getattr(alice_client, method)(url, data).status_code == for_alice, url


def test_it_sends_anonymous_visitors_to_sign_in(client, segment):
    response = client.get(BASE)
    assert response.status_code == 302 and "/login/" in response["Location"]


# -- list and counts -------------------------------------------------------------------------------


def test_it_lists_segments_with_a_count_loaded_per_row(segment, alice_client, carol_client):
    page = alice_client.get(BASE).content.decode()
    assert "Example.com people" in page
    assert f'hx-get="{BASE}{segment.pk}/count/"' in page
    assert f'href="{BASE}new/"' in page
    assert f'href="{BASE}new/"' not in carol_client.get(BASE).content.decode()
    fragment = carol_client.get(f"{BASE}{segment.pk}/count/")
    assert count_in(fragment) == 2
    assert "<html" not in fragment.content.decode()


def test_it_counts_a_draft_posted_as_json_or_as_the_builder_form(people, alice_client):
    response = alice_client.post(
        f"{BASE}count/", json.dumps(tree(DOMAIN)), content_type="application/json"
    )
    assert count_in(response) == 2
    response = alice_client.post(f"{BASE}count/", {"rules": json.dumps(tree(DOMAIN, match="any"))})
    assert count_in(response) == 2
    fields = {
        **ROOT,
        "n-0-match": "any",
        "n-1-type": "field",
        "n-1-parent": "0",
        "n-1-field": "email",
        "n-1-op": "ends_with",
        "n-1-value": "@other.test",
        "n-2-type": "field",
        "n-2-parent": "0",
        "n-2-field": "email",
        "n-2-op": "starts_with",
        "n-2-value": "ann",
    }
    assert count_in(alice_client.post(f"{BASE}count/", form(fields))) == 2
    assert count_in(alice_client.post(f"{BASE}count/", form(ROOT))) == 3  # everyone in acme


def test_it_says_why_a_draft_cannot_be_counted(people, alice_client, personas):
    response = alice_client.post(
        f"{BASE}count/",
        {"rules": json.dumps(tree({**DOMAIN, "value": ""}))},
    )
    text = response.content.decode()
    assert response.status_code == 200 and count_in(response) is None
    assert "Cannot count yet: a condition needs attention (the value: must not be empty)" in text
    from mailmarketer.audience.models import MailingList

    theirs = MailingList.objects.create(workspace=personas.evil, name="Theirs", slug="theirs")
    response = alice_client.post(
        f"{BASE}count/", {"rules": json.dumps(tree({"type": "list", "list": theirs.pk}))}
    )
    assert f"no list with id {theirs.pk} in this workspace" in response.content.decode()
    response = alice_client.post(f"{BASE}count/", {"rules": "{oops"})
    assert "Cannot count yet: rules: not valid JSON" in response.content.decode()


def test_it_lets_analysts_count_by_domain_but_not_single_out_a_person(people, carol_client):
    by_address = carol_client.post(f"{BASE}count/", {"rules": json.dumps(tree(ADDRESS))})
    assert count_in(by_address) is None
    assert "needs permission to see personal data" in by_address.content.decode()
    by_domain = carol_client.post(f"{BASE}count/", {"rules": json.dumps(tree(DOMAIN))})
    assert count_in(by_domain) == 2


def test_it_does_not_let_analysts_count_by_an_attribute_value(personas, people, carol_client):
    Subscriber.objects.filter(email="ann@example.com").update(attributes={"phone": "+47 555"})
    phone = {"type": "attribute", "name": "phone", "value_type": "string"}
    guess = tree(DOMAIN, {**phone, "op": "starts_with", "value": "+47"})
    response = carol_client.post(f"{BASE}count/", {"rules": json.dumps(guess)})
    assert count_in(response) is None
    assert "personal data (rules.root.children[1])" in response.content.decode()
    # Whether someone has a phone at all is not their phone: that may be counted.
    has_phone = tree({**phone, "op": "exists"})
    assert count_in(carol_client.post(f"{BASE}count/", {"rules": json.dumps(has_phone)})) == 1


# -- the builder without JavaScript ---------------------------------------------------------------


def test_it_builds_a_segment_with_plain_form_posts(people, alice_client, personas):
    page = alice_client.get(f"{BASE}new/")
    assert page.status_code == 200 and count_in(page) == 3
    html = page.content.decode()
    assert 'name="n-0-match"' in html and 'value="add:field:0"' in html
    # Add a condition to the root group: the page comes back with it, nothing saved yet.
    added = alice_client.post(f"{BASE}new/", form(ROOT, name="Mine", edit="add:field:0"))
    html = added.content.decode()
    assert added.status_code == 200 and not Segment.objects.exists()
    assert 'name="n-1-field"' in html and 'name="n-1-parent" value="0"' in html
    assert re.search(r'id="n-1-field"[^>]*autofocus', html), "focus goes to the new condition"
    assert 'value="Mine"' in html
    # Add a group, then remove it again.
    condition = {
        "n-1-type": "field",
        "n-1-parent": "0",
        "n-1-field": "email",
        "n-1-op": "ends_with",
        "n-1-value": "@example.com",
    }
    grouped = alice_client.post(f"{BASE}new/", form({**ROOT, **condition}, edit="add:group:0"))
    assert 'name="n-2-type" value="group"' in grouped.content.decode()
    removed = alice_client.post(
        f"{BASE}new/",
        form(
            {
                **ROOT,
                **condition,
                "n-2-type": "group",
                "n-2-parent": "0",
                "n-2-match": "any",
            },
            edit="remove:2",
        ),
    )
    assert 'name="n-2-type"' not in removed.content.decode()
    assert count_in(removed) == 2
    saved = alice_client.post(f"{BASE}new/", form({**ROOT, **condition}, name="Mine", edit="save"))
    segment = Segment.objects.get()
    assert saved.status_code == 302 and saved["Location"] == f"{BASE}{segment.pk}/"
    assert segment.rules == tree(DOMAIN) and segment.workspace == personas.acme
    assert AuditEvent.objects.filter(event="segment.created", object_id=str(segment.pk)).exists()


def test_it_shows_errors_beside_the_condition_and_saves_nothing(people, alice_client):
    fields = {
        **ROOT,
        "n-1-type": "field",
        "n-1-parent": "0",
        "n-1-field": "created_at",
        "n-1-op": "before",
        "n-1-value": "yesterday",
    }
    response = alice_client.post(f"{BASE}new/", form(fields, name="Dates", edit="save"))
    html = response.content.decode()
    assert response.status_code == 400 and not Segment.objects.exists()
    assert 'id="n-1-error"' in html
    assert "The value: expected a date like 2025-01-31, got &#x27;yesterday&#x27;" in html
    missing_name = alice_client.post(f"{BASE}new/", form(ROOT, edit="save"))
    assert missing_name.status_code == 400
    assert "Give the segment a name." in missing_name.content.decode()


def test_it_offers_the_comparisons_of_the_chosen_field_after_a_change(alice_client, people):
    fields = {
        **ROOT,
        "n-1-type": "field",
        "n-1-parent": "0",
        "n-1-field": "created_at",  # just changed from email; the op is still a text one
        "n-1-op": "ends_with",
        "n-1-value": "@example.com",
    }
    html = alice_client.post(f"{BASE}new/", form(fields, edit="refresh")).content.decode()
    op_select = re.search(r'<select id="n-1-op".*?</select>', html, re.S).group(0)
    assert '<option value="before" selected>' in op_select
    assert "ends_with" not in op_select
    assert re.search(r'<input id="n-1-value" name="n-1-value" value=""\s+type="date"', html)


def test_it_refuses_a_form_that_is_not_a_tree(alice_client):
    orphan = {**ROOT, "n-1-type": "field", "n-1-parent": "7", "n-1-field": "email"}
    response = alice_client.post(f"{BASE}new/", form(orphan, edit="refresh"))
    assert response.status_code == 400
    assert "node 1 names a parent that is not a group before it" in response.content.decode()
    response = alice_client.post(f"{BASE}new/", form(ROOT, edit="remove:0"))
    assert response.status_code == 400


# -- the builder with htmx ---------------------------------------------------------------------


def test_it_answers_an_htmx_edit_with_the_tree_and_asks_for_a_recount(alice_client, people):
    response = alice_client.post(
        f"{BASE}new/", form(ROOT, edit="add:list:0"), headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert response["HX-Trigger"] == "rules-changed"
    assert 'id="rule-tree"' in html and 'name="n-1-list"' in html
    assert "Not counted yet" in html, "an in-place edit leaves counting to the count endpoint"
    assert 'hx-post="/app/acme/audience/segments/count/"' in html
    assert "rules-changed from:body" in html


# -- a saved segment ----------------------------------------------------------------------------


def test_it_shows_editors_the_builder_and_others_a_masked_summary(
    personas, staff, people, alice_client, carol_client
):
    segment = do_create_segment(
        personas.acme, name="Ann", rules=tree(ADDRESS, DOMAIN, match="any"), actor=staff
    )
    html = alice_client.get(f"{BASE}{segment.pk}/").content.decode()
    assert f'action="{BASE}{segment.pk}/edit/"' in html
    assert 'value="ann@example.com"' in html
    response = carol_client.get(f"{BASE}{segment.pk}/")
    html = response.content.decode()
    assert count_in(response) == 2
    assert 'name="n-0-match"' not in html and f"{segment.pk}/edit/" not in html
    assert "ann@example.com" not in html
    assert "Email is “a•••@example.com”" in html
    assert "Email ends with “@example.com”" in html


def test_it_masks_attribute_values_in_the_summary_for_analysts(
    personas, staff, people, carol_client
):
    phone = {"type": "attribute", "name": "phone", "value_type": "string", "op": "eq"}
    segment = do_create_segment(
        personas.acme, name="One phone", rules=tree({**phone, "value": "+47 555 0009"}), actor=staff
    )
    html = carol_client.get(f"{BASE}{segment.pk}/").content.decode()
    assert "555 0009" not in html  # a token or a time on the page may hold "555"
    assert "Attribute “phone” (string) is “•••”" in html


def test_it_saves_changes_to_a_segment(segment, alice_client):
    fields = {
        **ROOT,
        "n-1-type": "field",
        "n-1-parent": "0",
        "n-1-field": "email",
        "n-1-op": "ends_with",
        "n-1-value": "@other.test",
    }
    response = alice_client.post(
        f"{BASE}{segment.pk}/edit/", form(fields, name="Other people", edit="save")
    )
    assert response.status_code == 302
    segment.refresh_from_db()
    assert segment.name == "Other people"
    assert segment.rules["root"]["children"][0]["value"] == "@other.test"


def test_it_deletes_a_segment_after_confirmation(segment, alice_client):
    confirm = alice_client.get(f"{BASE}{segment.pk}/delete/")
    assert "Delete the segment “Example.com people”?" in confirm.content.decode()
    assert Segment.objects.exists()
    response = alice_client.post(f"{BASE}{segment.pk}/delete/")
    assert response.status_code == 302 and response["Location"] == BASE
    assert not Segment.objects.exists()


def test_it_never_counts_acme_for_mallory_even_naming_acmes_list(
    personas, staff, people, mallory_client
):
    from mailmarketer.audience.actions import do_create_list

    news = do_create_list(personas.acme, name="News", slug="news", actor=staff)
    rules = {"rules": json.dumps(tree({"type": "list", "list": news.pk, "member": False}))}
    response = mallory_client.post("/app/evil/audience/segments/count/", rules)
    assert count_in(response) is None
    assert f"no list with id {news.pk} in this workspace" in response.content.decode()
    everyone = mallory_client.post(
        "/app/evil/audience/segments/count/", {"rules": json.dumps(tree())}
    )
    assert count_in(everyone) == 1  # zed, never acme's three


# -- the members of a segment on the subscribers page ---------------------------------------------


def test_it_links_a_segment_to_its_members_on_the_subscribers_page(segment, alice_client):
    detail = alice_client.get(f"{BASE}{segment.pk}/").content.decode()
    link = f"/app/acme/audience/subscribers/?segment={segment.pk}"
    assert f'href="{link}"' in detail
    members = alice_client.get(link).content.decode()
    assert "ann@example.com" in members and "bob@example.com" in members
    assert "cy@other.test" not in members
    assert f'<option value="{segment.pk}" selected>Example.com people</option>' in members


def test_it_shows_nobody_for_another_workspaces_segment(personas, staff, alice_client):
    theirs = do_create_segment(personas.evil, name="Theirs", rules=tree(DOMAIN), actor=staff)
    Subscriber.objects.create(workspace=personas.acme, email="ann@example.com")
    page = alice_client.get(f"/app/acme/audience/subscribers/?segment={theirs.pk}")
    assert page.status_code == 400  # not a choice of this workspace's segments
    assert "ann@example.com" not in page.content.decode()
