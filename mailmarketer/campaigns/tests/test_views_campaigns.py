"""Campaign pages: writing a campaign (template errors on their field with the line, headers,
attachments), clone and delete, and who may do what on every campaign page (the sending pages'
own tests are in delivery/tests/pages/test_views_campaign.py)."""

from __future__ import annotations

import re

import pytest

from mailmarketer.campaigns.models import Attachment, Campaign
from mailmarketer.testing import SETUP, events, launched, url

pytestmark = pytest.mark.django_db
Status = Campaign.Status
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64

FORM = {
    "name": "Winter sale",
    "subject": "Hi {{ subscriber.first_name }}",
    "from_name": "",
    "from_email": "",
    "reply_to": "help@acme.test",
    "body_format": "markdown",
    "body": "# Sale\n\nEverything **half price**.",
    "text_body": "",
    "layout": "",
    "archive": "on",
    "headers-TOTAL_FORMS": "2",
    "headers-INITIAL_FORMS": "0",
    "headers-MIN_NUM_FORMS": "0",
    "headers-MAX_NUM_FORMS": "20",
    "headers-0-name": "X-Campaign-Code",
    "headers-0-value": "winter-26",
    "headers-1-name": "",
    "headers-1-value": "",
}


def html_of(response) -> str:
    return response.content.decode()


# -- writing ---------------------------------------------------------------------------------


def test_it_shows_the_workspace_sender_as_the_from_placeholder(bob_client, ws):
    html = html_of(bob_client.get(url("campaign-new")))
    assert re.search(r'name="from_email"[^>]*placeholder="news@acme.test"', html)
    assert re.search(r'name="from_name"[^>]*placeholder="Acme"', html)
    assert 'class="code"' in html  # the body is a monospace textarea
    assert "Save the draft first" in html


def test_it_creates_a_draft_with_lists_headers_and_archive(bob_client, news, personas):
    response = bob_client.post(url("campaign-new"), {**FORM, "lists": [str(news.pk)]})
    assert response.status_code == 302
    campaign = Campaign.objects.get(name="Winter sale")
    assert response["Location"] == f"/app/acme/campaigns/{campaign.pk}/"
    assert campaign.status == Status.DRAFT and campaign.archive
    assert campaign.reply_to == "help@acme.test"
    assert campaign.headers == [["X-Campaign-Code", "winter-26"]]
    assert list(campaign.lists.all()) == [news]
    assert campaign.created_by == personas.bob
    (event,) = events("campaign.created")
    assert event.actor_user == personas.bob


RULES = {
    "version": 1,
    "root": {
        "type": "group",
        "match": "all",
        "children": [
            {
                "type": "attribute",
                "name": "city",
                "value_type": "string",
                "op": "eq",
                "value": "Oslo",
            }
        ],
    },
}


def test_it_narrows_the_audience_with_segments(bob_client, news, ws):
    from mailmarketer.audience.segments.actions import do_create_segment

    oslo = do_create_segment(ws, name="Oslo", rules=RULES, actor=SETUP)
    vip = do_create_segment(ws, name="VIP", rules=RULES, actor=SETUP)
    response = bob_client.post(
        url("campaign-new"),
        {**FORM, "lists": [str(news.pk)], "segment": str(oslo.pk), "exclude_segments": [vip.pk]},
    )
    assert response.status_code == 302
    campaign = Campaign.objects.get(name="Winter sale")
    assert campaign.segment == oslo
    assert list(campaign.exclude_segments.all()) == [vip]
    html = html_of(bob_client.get(url("campaign", campaign_id=campaign.pk)))
    assert "Only those in the segment</dt><dd>Oslo" in html
    edit = html_of(bob_client.get(url("campaign-edit", campaign_id=campaign.pk)))
    assert f'<option value="{oslo.pk}" selected>Oslo</option>' in edit


def test_it_refuses_another_workspaces_segment(bob_client, personas):
    from mailmarketer.audience.segments.actions import do_create_segment

    theirs = do_create_segment(personas.evil, name="Evil", rules=RULES, actor=SETUP)
    response = bob_client.post(url("campaign-new"), {**FORM, "segment": str(theirs.pk)})
    assert response.status_code == 400
    assert not Campaign.objects.exists()


def test_it_shows_a_template_error_on_its_field_with_the_line(bob_client, news):
    body = "Hello\n\nthere\n{{ subscriber.name | shout }}"
    response = bob_client.post(url("campaign-new"), {**FORM, "body": body})
    assert response.status_code == 400
    html = html_of(response)
    assert re.search(r'name="body"[^>]*aria-invalid="true"', html)
    error = re.search(r'<ul class="errorlist" id="id_body_error"><li>(.*?)</li>', html)
    assert error is not None
    assert error.group(1).startswith("body, line 4:")
    assert "shout" in error.group(1)
    assert not Campaign.objects.filter(name="Winter sale").exists()


def test_it_shows_a_subject_error_on_the_subject(bob_client):
    response = bob_client.post(url("campaign-new"), {**FORM, "subject": "Hi {{ oops"})
    assert response.status_code == 400
    assert re.search(r'name="subject"[^>]*aria-invalid="true"', html_of(response))
    assert "subject, line 1:" in html_of(response)


def test_it_refuses_an_injected_header_on_the_headers(bob_client):
    response = bob_client.post(
        url("campaign-new"),
        {**FORM, "headers-0-name": "Bcc", "headers-0-value": "all@evil.test"},
    )
    assert response.status_code == 400
    assert "set by Mail Marketer itself" in html_of(response)
    assert 'id="headers-error"' in html_of(response)
    assert not Campaign.objects.exists()


def test_it_refuses_a_header_value_without_a_name(bob_client):
    response = bob_client.post(url("campaign-new"), {**FORM, "headers-0-name": ""})
    assert response.status_code == 400
    assert "Give the header a name" in html_of(response)


def test_it_refuses_an_invalid_from_address_on_its_field(bob_client):
    response = bob_client.post(url("campaign-new"), {**FORM, "from_email": "not an address"})
    assert response.status_code == 400
    assert re.search(r'name="from_email"[^>]*aria-invalid="true"', html_of(response))


def test_it_refuses_another_workspaces_list(bob_client, personas):
    from mailmarketer.audience import actions as audience

    theirs = audience.do_create_list(personas.evil, name="Evil", slug="evil", actor=SETUP)
    response = bob_client.post(url("campaign-new"), {**FORM, "lists": [str(theirs.pk)]})
    assert response.status_code == 400
    assert not Campaign.objects.exists()


def test_it_edits_a_draft(bob_client, draft, news):
    page = bob_client.get(url("campaign-edit", campaign_id=draft.pk))
    assert page.status_code == 200
    assert "Hello {{ subscriber.first_name }}" in html_of(page)
    response = bob_client.post(
        url("campaign-edit", campaign_id=draft.pk),
        {**FORM, "name": "Autumn news, final", "lists": [str(news.pk)]},
    )
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.name == "Autumn news, final"
    (event,) = events("campaign.updated")
    assert event.new["name"] == "Autumn news, final"


def test_it_keeps_a_draft_unchanged_when_its_new_body_cannot_render(bob_client, draft):
    response = bob_client.post(
        url("campaign-edit", campaign_id=draft.pk), {**FORM, "body": "{% for x in %}"}
    )
    assert response.status_code == 400
    assert "body, line 1:" in html_of(response)
    draft.refresh_from_db()
    assert draft.name == "Autumn news"


def test_it_refuses_to_edit_a_running_campaign(bob_client, draft):
    launched(draft)
    response = bob_client.get(url("campaign-edit", campaign_id=draft.pk))
    assert response.status_code == 409
    assert "only drafts and scheduled campaigns can be changed" in html_of(response)
    response = bob_client.post(url("campaign-edit", campaign_id=draft.pk), FORM)
    assert response.status_code == 409
    draft.refresh_from_db()
    assert draft.name == "Autumn news"


def test_it_attaches_and_removes_a_file_with_the_limits_shown(bob_client, draft):
    from django.core.files.uploadedfile import SimpleUploadedFile

    page = html_of(bob_client.get(url("campaign-edit", campaign_id=draft.pk)))
    assert "Up to 1 MB a file, 5 MB in all, at most 10 files" in page
    response = bob_client.post(
        url("campaign-attachment-add", campaign_id=draft.pk),
        {"file": SimpleUploadedFile("map.png", PNG, content_type="application/octet-stream")},
    )
    assert response.status_code == 302
    (attachment,) = Attachment.objects.filter(campaign=draft)
    assert (attachment.filename, attachment.content_type) == ("map.png", "image/png")
    assert events("campaign.attachment_added")
    response = bob_client.post(
        url("campaign-attachment-remove", campaign_id=draft.pk, attachment_id=attachment.pk)
    )
    assert response.status_code == 302
    assert not Attachment.objects.exists()
    assert events("campaign.attachment_removed")


def test_it_refuses_a_file_whose_content_is_not_its_type(bob_client, draft):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = bob_client.post(
        url("campaign-attachment-add", campaign_id=draft.pk),
        {"file": SimpleUploadedFile("invoice.pdf", b"MZ\x90\x00 not a pdf")},
    )
    assert response.status_code == 400
    assert "its content does not match" in html_of(response)
    assert not Attachment.objects.exists()


def test_it_refuses_a_file_over_one_megabyte_before_reading_it(bob_client, draft):
    from django.core.files.uploadedfile import SimpleUploadedFile

    big = PNG + b"\x00" * (1024 * 1024)
    response = bob_client.post(
        url("campaign-attachment-add", campaign_id=draft.pk),
        {"file": SimpleUploadedFile("big.png", big)},
    )
    assert response.status_code == 400
    assert "at most 1,048,576 (1 MB) are allowed" in html_of(response)
    assert not Attachment.objects.exists()


def test_it_clones_a_campaign_into_a_draft(bob_client, draft):
    launched(draft)
    response = bob_client.post(url("campaign-clone", campaign_id=draft.pk))
    assert response.status_code == 302
    clone = Campaign.objects.exclude(pk=draft.pk).get()
    assert clone.status == Status.DRAFT and clone.name == "Autumn news (copy)"
    assert response["Location"] == f"/app/acme/campaigns/{clone.pk}/edit/"
    assert events("campaign.cloned")


def test_it_deletes_a_draft_after_confirming(bob_client, draft):
    page = bob_client.get(url("campaign-delete", campaign_id=draft.pk))
    assert page.status_code == 200 and "Delete the draft" in html_of(page)
    assert Campaign.objects.filter(pk=draft.pk).exists()
    response = bob_client.post(url("campaign-delete", campaign_id=draft.pk))
    assert response.status_code == 302
    assert not Campaign.objects.filter(pk=draft.pk).exists()
    assert events("campaign.deleted")


def test_it_refuses_to_delete_a_campaign_that_was_sent(bob_client, draft):
    launched(draft)
    response = bob_client.post(url("campaign-delete", campaign_id=draft.pk))
    assert response.status_code == 409
    assert Campaign.objects.filter(pk=draft.pk).exists()


# -- who may do what -------------------------------------------------------------------------

MANAGE_POSTS = [
    ("campaign-edit", {}),
    ("campaign-clone", {}),
    ("campaign-delete", {}),
    ("campaign-schedule", {"when": "2099-01-01T09:00"}),
    ("campaign-unschedule", {}),
    ("campaign-attachment-add", {}),
]
SEND_POSTS = [
    ("campaign-start", {}),
    ("campaign-pause", {}),
    ("campaign-resume", {}),
    ("campaign-cancel", {}),
    ("campaign-retry", {}),
]


@pytest.mark.parametrize(("name", "data"), MANAGE_POSTS + SEND_POSTS)
def test_it_refuses_an_analyst_every_change(carol_client, draft, name, data):
    response = carol_client.post(url(name, campaign_id=draft.pk), data)
    assert response.status_code == 403
    draft.refresh_from_db()
    assert draft.status == Status.DRAFT
    assert Campaign.objects.count() == 1
    assert not events("campaign.status_changed") and not events("campaign.started")


def test_it_refuses_an_analyst_the_new_campaign_page(carol_client, news):
    assert carol_client.get(url("campaign-new")).status_code == 403
    assert carol_client.post(url("campaign-new"), FORM).status_code == 403
    assert not Campaign.objects.exists()


def test_it_refuses_an_analyst_attachment_removal(carol_client, draft):
    attachment = Attachment.objects.create(
        campaign=draft, filename="a.png", content_type="image/png", data=PNG, size=len(PNG)
    )
    response = carol_client.post(
        url("campaign-attachment-remove", campaign_id=draft.pk, attachment_id=attachment.pk)
    )
    assert response.status_code == 403
    assert Attachment.objects.filter(pk=attachment.pk).exists()


GETS = ["campaign", "campaign-progress", "campaign-edit", "campaign-delete", "campaign-cancel"]


@pytest.mark.parametrize("name", GETS)
def test_it_hides_every_campaign_page_from_mallory(mallory_client, draft, evil_draft, name):
    assert mallory_client.get(url(name, campaign_id=draft.pk)).status_code == 404
    assert mallory_client.get(url(name, ws="evil", campaign_id=draft.pk)).status_code == 404


@pytest.mark.parametrize(("name", "data"), MANAGE_POSTS + SEND_POSTS)
def test_it_lets_mallory_change_nothing_of_acme(mallory_client, draft, evil_draft, name, data):
    assert mallory_client.post(url(name, campaign_id=draft.pk), data).status_code == 404
    response = mallory_client.post(url(name, ws="evil", campaign_id=draft.pk), data)
    assert response.status_code == 404
    draft.refresh_from_db()
    assert (draft.status, draft.name) == (Status.DRAFT, "Autumn news")
    assert Campaign.objects.count() == 2


def test_it_lets_mallory_remove_no_acme_attachment(mallory_client, draft, evil_draft):
    attachment = Attachment.objects.create(
        campaign=draft, filename="a.png", content_type="image/png", data=PNG, size=len(PNG)
    )
    for ws, campaign in (("acme", draft), ("evil", evil_draft)):
        response = mallory_client.post(
            url(
                "campaign-attachment-remove",
                ws=ws,
                campaign_id=campaign.pk,
                attachment_id=attachment.pk,
            )
        )
        assert response.status_code == 404
    assert Attachment.objects.filter(pk=attachment.pk).exists()
