"""The editor's live preview: the unsaved form rendered as the campaign would be sent (its
layout, the footer, sample data or a chosen person), nothing saved, errors shown in the pane;
CSRF, permissions and workspace isolation of its endpoints; the edit page's layout."""

from __future__ import annotations

import re

import pytest
from django.core import signing
from django.test import Client

from mailmarketer.audience import actions as audience
from mailmarketer.audience.actions import Reason
from mailmarketer.campaigns import actions, views_preview
from mailmarketer.campaigns.models import Campaign
from mailmarketer.testing import SETUP, events, url

pytestmark = pytest.mark.django_db


def form(**fields) -> dict:
    values = {
        "subject": "Hi {{ subscriber.first_name }}",
        "body_format": "markdown",
        "body": "Our **autumn** roast, {{ subscriber.first_name }}.",
        "text_body": "",
        "layout": "",
        "preview_as": "",
    }
    values.update(fields)
    return values


@pytest.fixture
def ann(ws, news):
    person = audience.do_create_subscriber(
        ws, email="ann@example.com", name="Ann Lee", attributes={"plan": "pro"}, actor=SETUP
    )
    audience.do_subscribe(person, [news], actor=SETUP, reason=Reason.BY_ADMIN, confirmed=True)
    return person


def choose(client, person) -> str:
    """Choose `person` in the chooser; returns the token the page carries."""
    response = client.post(url("campaign-live-as"), {"subscriber": str(person.uuid)})
    assert response.status_code == 200
    assert response["HX-Trigger-After-Settle"] == "preview-as-changed"
    return re.search(r'name="preview_as" value="([^"]+)"', response.content.decode()).group(1)


# -- rendering the unsaved form ------------------------------------------------------------


def test_it_renders_the_unsaved_subject_and_text_with_sample_data(bob_client, ws):
    response = bob_client.post(url("campaign-live-preview"), form())
    assert response.status_code == 200
    html = response.content.decode()
    assert "Hi Jane" in html
    assert "Our autumn roast, Jane." in html  # the text version
    assert "data-ok" in html
    assert not Campaign.objects.exists()  # nothing saved


def test_it_renders_the_html_in_the_layout_with_the_footer_and_a_sandbox_policy(bob_client, ws):
    response = bob_client.post(url("campaign-live-preview-html"), form())
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    html = response.content.decode()
    assert "Our <strong>autumn</strong> roast, Jane." in html
    assert "1 Main Street" in html  # the built-in layout's footer: the postal address
    assert "/f/u/preview" in html  # the inert unsubscribe link, not a live one
    csp = response["Content-Security-Policy"]
    assert csp.startswith("sandbox allow-same-origin; default-src 'none';")
    assert "script-src" not in csp
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert "no-store" in response["Cache-Control"]


def test_it_renders_what_was_typed_not_what_was_saved(bob_client, draft):
    response = bob_client.post(
        url("campaign-live-preview-html"),
        form(campaign=draft.pk, body="Changed, not saved: {{ lists }}"),
    )
    html = response.content.decode()
    assert "Changed, not saved: News" in html  # and the saved lists of the campaign
    draft.refresh_from_db()
    assert draft.body == "Read [the post](https://acme.test/post)."


def test_it_does_not_rewrite_links_for_tracking(bob_client, ws):
    response = bob_client.post(
        url("campaign-live-preview-html"), form(body="[Shop](https://shop.acme.test/x)")
    )
    assert 'href="https://shop.acme.test/x"' in response.content.decode()
    assert "/t/" not in response.content.decode()


def test_it_uses_the_chosen_layout(bob_client, ws):
    layout = actions.do_create_layout(
        ws, actor=SETUP, name="Plain", html="<html><body>LAYOUT-TOP {{ content }}</body></html>"
    )
    response = bob_client.post(url("campaign-live-preview-html"), form(layout=str(layout.pk)))
    assert "LAYOUT-TOP" in response.content.decode()


def test_it_shows_a_template_error_in_the_pane_not_a_500(bob_client, ws):
    response = bob_client.post(url("campaign-live-preview"), form(body="Hi {{ name | shout }}"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "cannot be rendered" in html
    assert "shout" in html
    assert 'role="alert"' in html
    assert "data-ok" not in html
    frame = bob_client.post(url("campaign-live-preview-html"), form(body="{% if %}"))
    assert frame.status_code == 400
    assert frame["Content-Type"] == "text/plain; charset=utf-8"


def test_it_shows_a_bad_form_as_a_message(bob_client, ws):
    response = bob_client.post(url("campaign-live-preview"), form(body_format="pdf"))
    assert response.status_code == 200
    assert "The preview cannot be made: body format" in response.content.decode()


def test_it_says_a_plain_text_campaign_has_no_html(bob_client, ws):
    response = bob_client.post(url("campaign-live-preview"), form(body_format="text"))
    assert "there is no HTML version" in response.content.decode()
    frame = bob_client.post(url("campaign-live-preview-html"), form(body_format="text"))
    assert frame.status_code == 200
    assert frame["Content-Type"] == "text/plain; charset=utf-8"


# -- as a chosen subscriber ----------------------------------------------------------------


def test_it_previews_as_a_chosen_subscriber_audited_once(bob_client, ann):
    token = choose(bob_client, ann)
    assert len(events("subscriber.viewed")) == 1
    for _ in range(3):
        response = bob_client.post(url("campaign-live-preview"), form(preview_as=token))
        assert "Hi Ann" in response.content.decode()
    assert len(events("subscriber.viewed")) == 1  # at the choice, not per keystroke


def test_it_searches_the_campaigns_lists_by_address(bob_client, ws, news, ann):
    other = audience.do_create_list(ws, name="Other", slug="other", actor=SETUP)
    outsider = audience.do_create_subscriber(ws, email="annie@example.com", actor=SETUP)
    audience.do_subscribe(outsider, [other], actor=SETUP, reason=Reason.BY_ADMIN, confirmed=True)
    response = bob_client.get(url("campaign-live-people"), {"q": "ann", "lists": [news.pk]})
    html = response.content.decode()
    assert "ann@example.com" in html
    assert "annie@example.com" not in html
    assert len(events("subscriber.listed")) == 1
    everyone = bob_client.get(url("campaign-live-people"), {"q": "ann"}).content.decode()
    assert "annie@example.com" in everyone


def test_it_refuses_a_token_of_another_user(alice_client, bob_client, ann):
    token = choose(alice_client, ann)
    response = bob_client.post(url("campaign-live-preview"), form(preview_as=token))
    html = response.content.decode()
    assert "Hi Ann" not in html
    assert "not yours" in html


def test_it_refuses_a_forged_token(bob_client, ann):
    forged = signing.dumps({"s": str(ann.uuid), "u": 1, "w": 1}, salt="another salt")
    response = bob_client.post(url("campaign-live-preview"), form(preview_as=forged))
    assert "is not valid: choose the person again" in response.content.decode()
    assert "Hi Ann" not in response.content.decode()


def test_it_refuses_an_expired_token(bob_client, ann, monkeypatch):
    token = choose(bob_client, ann)
    monkeypatch.setattr(views_preview, "LIVE_AS_MAX_AGE", -1)
    response = bob_client.post(url("campaign-live-preview"), form(preview_as=token))
    assert "has expired: choose the person again" in response.content.decode()
    assert "Hi Ann" not in response.content.decode()


def test_it_goes_back_to_sample_data(bob_client, ann):
    response = bob_client.post(url("campaign-live-as"), {})
    assert 'name="preview_as" value=""' in response.content.decode()
    assert "Jane Doe" in response.content.decode()


# -- access --------------------------------------------------------------------------------


def test_it_enforces_csrf(personas, ws):
    client = Client(enforce_csrf_checks=True)
    client.force_login(personas.bob)
    assert client.post(url("campaign-live-preview"), form()).status_code == 403
    assert client.post(url("campaign-live-preview-html"), form()).status_code == 403
    assert client.post(url("campaign-live-as"), {}).status_code == 403


def test_it_needs_the_permission_to_write_campaigns(carol_client, ws):
    for name in ("campaign-live-preview", "campaign-live-preview-html", "campaign-live-as"):
        assert carol_client.post(url(name), form()).status_code == 403
    assert carol_client.get(url("campaign-live-people"), {"q": "a"}).status_code == 403


def test_it_needs_a_login(client, ws):
    response = client.post(url("campaign-live-preview"), form())
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_it_keeps_workspaces_apart(mallory_client, bob_client, draft, ann, evil_draft):
    # Another workspace's page: no such workspace for mallory.
    assert mallory_client.post(url("campaign-live-preview"), form()).status_code == 404
    # Another workspace's campaign, layout or person named from inside one's own.
    evil = url("campaign-live-preview", ws="evil")
    assert mallory_client.post(evil, form(campaign=draft.pk)).status_code == 404
    acme_layout = actions.do_create_layout(
        draft.workspace, actor=SETUP, name="Acme", html="<p>ACME {{ content }}</p>"
    )
    response = mallory_client.post(evil, form(layout=str(acme_layout.pk)))
    assert "layout does not exist" in response.content.decode()
    assert (
        mallory_client.post(
            url("campaign-live-as", ws="evil"), {"subscriber": str(ann.uuid)}
        ).status_code
        == 404
    )
    people = mallory_client.get(url("campaign-live-people", ws="evil"), {"q": "ann"})
    assert "ann@example.com" not in people.content.decode()
    token = choose(bob_client, ann)  # a token of acme's, replayed in evil
    response = mallory_client.post(evil, form(preview_as=token))
    assert "Hi Ann" not in response.content.decode()


def test_it_refuses_lists_of_another_workspace_in_the_search(mallory_client, news):
    response = mallory_client.get(
        url("campaign-live-people", ws="evil"), {"q": "a", "lists": [news.pk]}
    )
    assert response.status_code == 400


# -- the page ------------------------------------------------------------------------------


def test_the_edit_page_has_the_form_in_sections_beside_the_preview(bob_client, draft):
    html = bob_client.get(url("campaign-edit", campaign_id=draft.pk)).content.decode()
    for legend in ("Content", "Sender", "Audience", "Schedule", "Options"):
        assert f"<legend>{legend}</legend>" in html
    assert 'id="live-preview"' in html
    assert 'hx-trigger="load, input delay:400ms from:#campaign-form' in html
    assert 'formtarget="live-frame"' in html
    assert 'data-preview-width="mobile"' in html
    assert '<iframe name="live-frame" id="live-frame" class="mail live-frame" ' in html
    assert "/static/web/editor.js" in html and "/static/web/frame.js" in html


def test_saving_still_works_with_the_editors_extra_fields(bob_client, draft, news):
    data = {
        "name": "Autumn news",
        "subject": "New subject",
        "body_format": "markdown",
        "body": "New body",
        "text_body": "",
        "layout": "",
        "lists": [str(news.pk)],
        "segment": "",
        "tracking_mode": "",
        "campaign": str(draft.pk),
        "preview_as": "",
        "headers-TOTAL_FORMS": "0",
        "headers-INITIAL_FORMS": "0",
    }
    response = bob_client.post(url("campaign-edit", campaign_id=draft.pk), data)
    assert response.status_code == 302
    draft.refresh_from_db()
    assert (draft.subject, draft.body) == ("New subject", "New body")
