"""The lists page ("audience-home"): counts by status, creating, editing and deleting lists, the
links to the rest of the audience section, and who may do what."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import actions
from mailmarketer.audience.actions import Reason
from mailmarketer.audience.models import MailingList, Subscription
from mailmarketer.audience.views_lists import IMPORTS, SEGMENTS, optional_url


def url(name, ws="acme", **kwargs):
    return reverse(name, kwargs={"ws": ws, **kwargs})


LIST_FORM = {
    "name": "Product news",
    "slug": "product-news",
    "description": "What is new",
    "visibility": "public",
    "optin": "double",
    "tags": " product,  monthly ,product,, ",
}


@pytest.fixture
def members(personas, staff, news):
    for i, status in enumerate(["confirmed", "confirmed", "unconfirmed", "unsubscribed"]):
        sub = actions.do_create_subscriber(personas.acme, email=f"m{i}@example.com", actor=staff)
        actions.do_subscribe(
            sub, [news], actor=staff, reason=Reason.BY_ADMIN, confirmed=status != "unconfirmed"
        )
        if status == "unsubscribed":
            actions.do_unsubscribe(sub, actor=staff, reason=Reason.BY_ADMIN)
    return news


# -- the page ------------------------------------------------------------------------------------


def test_it_shows_lists_with_counts_by_status(alice_client, members):
    response = alice_client.get(url("audience-home"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "News" in html
    for status, count in (("confirmed", 2), ("unconfirmed", 1), ("unsubscribed", 1)):
        assert f'aria-label="{count} {status} ' in html
        assert f"?list={members.pk}&amp;subscription_status={status}" in html
    # Filtered subscribers, suppression and export are linked from here.
    assert f'href="/app/acme/audience/subscribers/?list={members.pk}"' in html
    assert 'href="/app/acme/audience/suppression/"' in html
    assert f'href="/app/acme/audience/export/?list={members.pk}"' in html


def test_it_is_the_audience_section_of_the_navigation(alice_client, personas):
    html = alice_client.get(url("app-dashboard")).content.decode()
    assert 'href="/app/acme/audience/"' in html


def test_it_links_imports_and_segments_only_where_those_pages_exist(alice_client, personas):
    html = alice_client.get(url("audience-home")).content.decode()
    for names, path in (
        (IMPORTS, "/app/acme/audience/imports/"),
        (SEGMENTS, "/app/acme/audience/segments/"),
    ):
        target = optional_url("acme", *names)
        if target:
            assert f'href="{target}"' in html
        else:  # not built yet: no link, and the page still renders
            assert f'href="{path}"' not in html


def test_it_shows_an_analyst_the_counts_without_forms(carol_client, members):
    response = carol_client.get(url("audience-home"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "News" in html and 'aria-label="2 confirmed' in html
    assert "Create a list" not in html
    assert url("audience-list-edit", list_id=members.pk) not in html
    assert "/audience/export/" not in html  # analysts cannot export


def test_it_hides_the_lists_page_from_another_workspace(mallory_client, news):
    assert mallory_client.get(url("audience-home")).status_code == 404
    own = mallory_client.get(url("audience-home", ws="evil"))
    assert own.status_code == 200
    assert "News" not in own.content.decode()


# -- creating ------------------------------------------------------------------------------------


def test_it_creates_a_list_with_its_tags(bob_client, personas):
    response = bob_client.post(url("audience-list-create"), LIST_FORM)
    assert response.status_code == 302
    ml = MailingList.objects.get(workspace=personas.acme, slug="product-news")
    assert (ml.name, ml.description, ml.visibility, ml.optin) == (
        "Product news",
        "What is new",
        "public",
        "double",
    )
    assert ml.tags == ["product", "monthly"]
    assert AuditEvent.objects.filter(event="list.created", object_id=str(ml.pk)).count() == 1


def test_it_refuses_a_taken_slug_on_the_slug_field(bob_client, news):
    response = bob_client.post(url("audience-list-create"), {**LIST_FORM, "slug": "news"})
    assert response.status_code == 409
    html = response.content.decode()
    assert "a list with the slug &#x27;news&#x27; already exists" in html
    assert re.search(r'name="slug"[^>]*aria-invalid="true"', html)
    assert MailingList.objects.filter(slug="news").count() == 1


def test_it_refuses_a_bad_slug_naming_the_rule(bob_client, personas):
    response = bob_client.post(url("audience-list-create"), {**LIST_FORM, "slug": "Bad Slug"})
    assert response.status_code == 400
    assert "lower-case letters, digits and hyphens" in response.content.decode()
    assert not MailingList.objects.exists()


def test_it_forbids_an_analyst_to_create_a_list(carol_client, personas):
    response = carol_client.post(url("audience-list-create"), LIST_FORM)
    assert response.status_code == 403
    assert not MailingList.objects.exists()


def test_it_keeps_mallory_from_creating_lists_in_acme(mallory_client, personas):
    assert mallory_client.post(url("audience-list-create"), LIST_FORM).status_code == 404
    assert not MailingList.objects.filter(workspace=personas.acme).exists()


# -- editing -------------------------------------------------------------------------------------


def test_it_edits_a_list(bob_client, news):
    page = bob_client.get(url("audience-list-edit", list_id=news.pk))
    assert page.status_code == 200
    assert 'value="news"' in page.content.decode()
    response = bob_client.post(
        url("audience-list-edit", list_id=news.pk),
        {**LIST_FORM, "name": "Newsletter", "slug": "news", "tags": "weekly"},
    )
    assert response.status_code == 302
    news.refresh_from_db()
    assert (news.name, news.tags, news.optin) == ("Newsletter", ["weekly"], "double")
    assert AuditEvent.objects.filter(event="list.updated", object_id=str(news.pk)).exists()


def test_it_refuses_renaming_a_list_to_a_taken_slug(bob_client, news, webinars):
    response = bob_client.post(
        url("audience-list-edit", list_id=webinars.pk), {**LIST_FORM, "slug": "news"}
    )
    assert response.status_code == 409
    webinars.refresh_from_db()
    assert webinars.slug == "webinars"
    assert "Edit the list “Webinars”" in response.content.decode()


def test_it_forbids_an_analyst_to_edit_a_list(carol_client, news):
    assert carol_client.get(url("audience-list-edit", list_id=news.pk)).status_code == 403
    response = carol_client.post(url("audience-list-edit", list_id=news.pk), LIST_FORM)
    assert response.status_code == 403
    news.refresh_from_db()
    assert news.name == "News"


def test_it_keeps_acme_lists_out_of_mallorys_workspace(mallory_client, news):
    for name in ("audience-list-edit", "audience-list-delete"):
        assert mallory_client.get(url(name, ws="evil", list_id=news.pk)).status_code == 404
        assert (
            mallory_client.post(url(name, ws="evil", list_id=news.pk), LIST_FORM).status_code == 404
        )
        assert mallory_client.get(url(name, list_id=news.pk)).status_code == 404
    news.refresh_from_db()
    assert news.name == "News"


# -- deleting ------------------------------------------------------------------------------------


def test_it_asks_before_deleting_a_list(bob_client, members):
    page = bob_client.get(url("audience-list-delete", list_id=members.pk))
    assert page.status_code == 200
    html = page.content.decode()
    assert "2 confirmed, 1 unconfirmed and 1 unsubscribed" in html
    assert 'method="post"' in html
    assert MailingList.objects.filter(pk=members.pk).exists()


def test_it_deletes_a_list_on_post(bob_client, members):
    response = bob_client.post(url("audience-list-delete", list_id=members.pk))
    assert response.status_code == 302
    assert not MailingList.objects.filter(pk=members.pk).exists()
    assert not Subscription.objects.filter(mailing_list_id=members.pk).exists()
    assert AuditEvent.objects.filter(event="list.deleted", object_id=str(members.pk)).count() == 1


def test_it_forbids_an_analyst_to_delete_a_list(carol_client, news):
    assert carol_client.get(url("audience-list-delete", list_id=news.pk)).status_code == 403
    assert carol_client.post(url("audience-list-delete", list_id=news.pk)).status_code == 403
    assert MailingList.objects.filter(pk=news.pk).exists()
