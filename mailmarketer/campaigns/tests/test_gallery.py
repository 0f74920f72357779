"""The gallery of starters: each one fills the new campaign form, saves as a draft, renders in
the preview with the layout and its footer, and goes out through the engine as a message that
Python's strict parser reads without a defect."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
from django.conf import settings

from mailmarketer.audience.models import Subscriber
from mailmarketer.campaigns import gallery
from mailmarketer.campaigns.models import Campaign
from mailmarketer.delivery import engine, planner
from mailmarketer.testing import launch, url

pytestmark = pytest.mark.django_db
STARTERS = [pytest.param(s, id=s.key) for s in gallery.STARTERS]


def parse_strict(data: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.strict)
    for part in message.walk():
        assert part.defects == []
        for name, value in part.items():
            assert value.defects == (), (name, value.defects)
    for line in data.split(b"\r\n"):
        assert len(line) <= 998
    assert data.count(b"\n") == data.count(b"\r\n")
    return message


def run_until_idle(limit=100):
    engine.reset_state()
    for _ in range(limit):
        if not (planner.plan_one() | engine.send_one() | engine.finish_one()):
            return
    raise AssertionError("the engine did not become idle")


def test_there_are_four_kinds():
    assert [s.key for s in gallery.STARTERS] == ["newsletter", "announcement", "letter", "event"]
    assert gallery.get_starter("nope") is None


def test_the_new_campaign_page_offers_them(bob_client, ws):
    html = bob_client.get(url("campaign-new")).content.decode()
    assert "Start from" in html
    for starter in gallery.STARTERS:
        assert f'href="?start={starter.key}"' in html
        assert starter.label in html


@pytest.mark.parametrize("starter", STARTERS)
def test_a_starter_fills_the_form_and_saves_as_a_draft(bob_client, ws, news, starter):
    page = bob_client.get(url("campaign-new"), {"start": starter.key})
    assert page.status_code == 200
    form = page.context["form"]
    assert form.initial["body"] == starter.body
    assert form.initial["body_format"] == starter.body_format
    data = {
        **starter.initial(),
        "text_body": "",
        "layout": "",
        "lists": [str(news.pk)],
        "segment": "",
        "tracking_mode": "",
        "headers-TOTAL_FORMS": "0",
        "headers-INITIAL_FORMS": "0",
    }
    response = bob_client.post(url("campaign-new"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    campaign = Campaign.objects.get()
    assert campaign.body == starter.body.strip()


def test_an_unknown_starter_is_a_404(bob_client, ws):
    assert bob_client.get(url("campaign-new"), {"start": "brochure"}).status_code == 404


@pytest.mark.parametrize("starter", STARTERS)
def test_a_starter_renders_in_the_live_preview(bob_client, ws, starter):
    data = {**starter.initial(), "text_body": "", "layout": "", "preview_as": ""}
    pane = bob_client.post(url("campaign-live-preview"), data).content.decode()
    assert "data-ok" in pane, pane
    frame = bob_client.post(url("campaign-live-preview-html"), data)
    assert frame.status_code == 200
    html = frame.content.decode()
    assert "{{" not in html and "{%" not in html
    assert "Hello Jane" in html or "Hi Jane" in html
    assert "1 Main Street" in html  # the footer is there


@pytest.mark.parametrize("starter", STARTERS)
def test_a_starter_sends_as_a_strictly_valid_message(ws, news, people, starter):
    campaign = launch(
        ws,
        [news],
        name=starter.name,
        subject=starter.subject,
        body=starter.body,
        body_format=starter.body_format,
    )
    run_until_idle()
    files = sorted(Path(settings.OUTBOX_DIR).rglob("*.eml"))
    assert len(files) == len(people)
    person = Subscriber.objects.get(email="person0@example.com")
    for path in files:
        message = parse_strict(path.read_bytes())
        if message["To"].addresses[0].addr_spec != person.email:
            continue
        html = message.get_body(preferencelist=("html",)).get_content()
        text = message.get_body(preferencelist=("plain",)).get_content()
        for part in (html, text, str(message["Subject"])):
            assert "{{" not in part and "{%" not in part
        assert "Person" in html  # the first name, as the person's name gives it
        assert "1 Main Street" in html and "1 Main Street" in text
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    campaign.refresh_from_db()
    assert campaign.status == "finished"
