"""The preview (sample data, or as a chosen subscriber with the personal-data permission and
audited), its sandboxed HTML endpoint and its headers, and test sends through the outbox."""

from __future__ import annotations

import re
from email import policy
from email.parser import BytesParser
from urllib.parse import parse_qs, urlparse

import pytest
from django.conf import settings
from django.core import signing

from mailmarketer.audience import actions as audience
from mailmarketer.campaigns import actions
from mailmarketer.campaigns.views_preview import PREVIEW_TOKEN_SALT
from mailmarketer.lib import outbox
from mailmarketer.testing import SETUP, events, url

pytestmark = pytest.mark.django_db


@pytest.fixture
def ann(ws):
    return audience.do_create_subscriber(
        ws, email="ann@example.com", name="Ann Lee", attributes={"plan": "pro"}, actor=SETUP
    )


@pytest.fixture
def personal(ws, news):
    return actions.do_create_campaign(
        ws,
        actor=SETUP,
        name="Personal",
        subject="For {{ subscriber.first_name }}",
        body="Your plan: **{{ subscriber.attributes.plan | default('none') }}**",
        lists=[news],
    )


def frame_src(html: str) -> str:
    return (
        re.search(
            r'<iframe class="mail" sandbox="allow-same-origin" data-fit-frame src="([^"]+)"', html
        )
        .group(1)
        .replace("&amp;", "&")
    )


# -- the page --------------------------------------------------------------------------------


def test_it_previews_with_sample_data_in_a_sandboxed_frame(bob_client, personal):
    response = bob_client.get(url("campaign-preview", campaign_id=personal.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert "For Jane" in html  # the subject, rendered
    assert "Your plan: none" in html  # the text version
    assert frame_src(html) == f"/app/acme/campaigns/{personal.pk}/preview/html"
    assert not events("subscriber.viewed")


def test_it_serves_the_html_with_a_sandbox_policy(bob_client, personal):
    response = bob_client.get(url("campaign-preview-html", campaign_id=personal.pk))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    csp = response["Content-Security-Policy"]
    assert csp.startswith(
        "sandbox allow-same-origin; default-src 'none'; "
        f"img-src data: https: {settings.BASE_URL}/i/; style-src 'unsafe-inline'; "
        "frame-ancestors 'self'"
    )
    assert "script-src" not in csp
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert "no-store" in response["Cache-Control"]
    assert "Your plan: <strong>none</strong>" in response.content.decode()


def test_it_has_no_html_frame_for_a_plain_text_campaign(bob_client, ws):
    text = actions.do_create_campaign(
        ws, actor=SETUP, name="Plain", subject="Hi", body="Just text", body_format="text"
    )
    page = bob_client.get(url("campaign-preview", campaign_id=text.pk)).content.decode()
    assert "<iframe" not in page and "Just text" in page
    assert bob_client.get(url("campaign-preview-html", campaign_id=text.pk)).status_code == 404


def test_it_finds_subscribers_to_preview_as_and_audits_the_listing(bob_client, personal, ann):
    response = bob_client.get(url("campaign-preview", campaign_id=personal.pk) + "?q=ann@")
    html = response.content.decode()
    assert f'href="?as={ann.uuid}"' in html
    (event,) = events("subscriber.listed")
    assert event.new == {"count": 1}


def test_it_previews_as_a_chosen_subscriber_and_audits_the_look(bob_client, personal, ann):
    response = bob_client.get(url("campaign-preview", campaign_id=personal.pk) + f"?as={ann.uuid}")
    assert response.status_code == 200
    html = response.content.decode()
    assert "For Ann" in html and "Your plan: pro" in html
    (event,) = events("subscriber.viewed")
    assert event.object_id == str(ann.pk)
    src = frame_src(html)
    frame = bob_client.get(src)
    assert frame.status_code == 200
    assert "Your plan: <strong>pro</strong>" in frame.content.decode()
    assert len(events("subscriber.viewed")) == 1  # the frame does not count the look twice


def test_it_refuses_a_frame_token_made_for_someone_else(bob_client, alice_client, personal, ann):
    page = bob_client.get(url("campaign-preview", campaign_id=personal.pk) + f"?as={ann.uuid}")
    src = frame_src(page.content.decode())
    assert alice_client.get(src).status_code == 404  # made for bob
    forged = signing.dumps({"c": personal.pk, "s": str(ann.uuid), "u": 1}, salt="other")
    path = url("campaign-preview-html", campaign_id=personal.pk)
    assert bob_client.get(f"{path}?as={forged}").status_code == 404
    assert bob_client.get(f"{path}?as={ann.uuid}").status_code == 404  # a bare uuid


def test_it_refuses_preview_as_to_an_analyst(carol_client, personal, ann):
    page = carol_client.get(url("campaign-preview", campaign_id=personal.pk))
    assert page.status_code == 200
    html = page.content.decode()
    assert "For Jane" in html
    assert 'name="q"' not in html  # no search by address
    assert "Send a test" not in html
    response = carol_client.get(
        url("campaign-preview", campaign_id=personal.pk) + f"?as={ann.uuid}&q=ann"
    )
    assert response.status_code == 403
    token = signing.dumps({"c": personal.pk, "s": str(ann.uuid), "u": 3}, salt=PREVIEW_TOKEN_SALT)
    frame = carol_client.get(url("campaign-preview-html", campaign_id=personal.pk) + f"?as={token}")
    assert frame.status_code == 403
    assert not events("subscriber.viewed") and not events("subscriber.listed")


def test_it_shows_a_render_error_instead_of_a_preview(bob_client, personal, ann):
    # Attributes can make a template fail for one person only (here: past the output cap).
    actions.do_update_campaign(
        personal,
        {"body": "{{ subscriber.attributes.plan * 2000000 }}"},
        actor=SETUP,
    )
    audience.do_update_subscriber(ann, attributes={"plan": "pro"}, actor=SETUP)
    response = bob_client.get(url("campaign-preview", campaign_id=personal.pk) + f"?as={ann.uuid}")
    assert response.status_code == 200
    assert "cannot be rendered for this person" in response.content.decode()


def test_it_hides_the_preview_from_mallory(mallory_client, personal, ann, evil_draft):
    for name in ("campaign-preview", "campaign-preview-html"):
        assert mallory_client.get(url(name, campaign_id=personal.pk)).status_code == 404
        assert mallory_client.get(url(name, ws="evil", campaign_id=personal.pk)).status_code == 404
    # Nor can she preview her own campaign as one of acme's people.
    own = url("campaign-preview", ws="evil", campaign_id=evil_draft.pk) + f"?as={ann.uuid}"
    assert mallory_client.get(own).status_code == 404


# -- test sends ------------------------------------------------------------------------------


def test_it_sends_a_test_to_the_outbox(
    bob_client, personal, ws, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = bob_client.post(
            url("campaign-test-send", campaign_id=personal.pk),
            {"to": "boss@acme.test, copy@elsewhere.test"},
        )
    assert response.status_code == 302
    entries, total = outbox.list_messages(viewer=outbox.Viewer(ws.pk, "nobody@acme.test"))
    assert total == 2
    assert sorted(e.to for e in entries) == ["boss@acme.test", "copy@elsewhere.test"]
    raw = next(outbox.outbox_dir().glob("*/*.eml")).read_bytes()
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert message["Subject"] == "[Test] For Jane"
    (event,) = events("campaign.test_sent")
    assert event.new == {"recipients": 2}
    page = bob_client.get(response["Location"])
    assert "Test sent to boss@acme.test, copy@elsewhere.test." in page.content.decode()


def test_it_sends_a_test_as_a_chosen_subscriber(
    bob_client, personal, ann, ws, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = bob_client.post(
            url("campaign-test-send", campaign_id=personal.pk),
            {"to": "boss@acme.test", "as": str(ann.uuid)},
        )
    assert response.status_code == 302
    assert parse_qs(urlparse(response["Location"]).query) == {"as": [str(ann.uuid)]}
    raw = next(outbox.outbox_dir().glob("*/*.eml")).read_bytes()
    assert BytesParser(policy=policy.default).parsebytes(raw)["Subject"] == "[Test] For Ann"
    (event,) = events("campaign.test_sent")
    assert event.new["as_subscriber"] == str(ann.uuid)


def test_it_shows_bad_test_addresses_on_the_field(bob_client, personal, ws):
    response = bob_client.post(
        url("campaign-test-send", campaign_id=personal.pk), {"to": "boss@acme.test, nope"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert re.search(r'name="to"[^>]*aria-invalid="true"', html)
    assert "&#x27;nope&#x27;" in html
    response = bob_client.post(url("campaign-test-send", campaign_id=personal.pk), {"to": ""})
    assert response.status_code == 400
    assert outbox.list_messages(viewer=outbox.Viewer(ws.pk, "x@acme.test"))[1] == 0
    assert not events("campaign.test_sent")


def test_it_refuses_test_sends_to_an_analyst_and_to_mallory(
    carol_client, mallory_client, personal, evil_draft, ws
):
    data = {"to": "carol@acme.test"}
    assert (
        carol_client.post(url("campaign-test-send", campaign_id=personal.pk), data).status_code
        == 403
    )
    assert (
        mallory_client.post(url("campaign-test-send", campaign_id=personal.pk), data).status_code
        == 404
    )
    theirs = url("campaign-test-send", ws="evil", campaign_id=personal.pk)
    assert mallory_client.post(theirs, data).status_code == 404
    assert outbox.list_messages(viewer=outbox.Viewer(ws.pk, "x@acme.test"))[1] == 0
    assert not events("campaign.test_sent")
