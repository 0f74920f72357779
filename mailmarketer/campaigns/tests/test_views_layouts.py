"""Layouts: listed for everyone who sees campaigns, written through the layout actions by those
who manage them, with template errors on the HTML field; other workspaces see none."""

from __future__ import annotations

import re

import pytest

from mailmarketer.campaigns import actions
from mailmarketer.campaigns.models import Layout
from mailmarketer.testing import SETUP, events, launched, url

pytestmark = pytest.mark.django_db

HTML = "<html><body><h1>Acme</h1>{{ content }}<p>{{ postal_address }}</p></body></html>"


@pytest.fixture
def brand(ws):
    return actions.do_create_layout(ws, actor=SETUP, name="Brand", html=HTML)


@pytest.fixture
def evil_layout(personas):
    return actions.do_create_layout(personas.evil, actor=SETUP, name="Evil", html=HTML)


def test_it_lists_layouts_and_links_them_from_campaigns_home(bob_client, brand):
    html = bob_client.get(url("campaigns-home")).content.decode()
    assert 'href="/app/acme/campaigns/layouts/"' in html
    html = bob_client.get(url("campaign-layouts")).content.decode()
    assert "Brand" in html
    assert f'href="/app/acme/campaigns/layouts/{brand.pk}/"' in html
    assert "{{ content }}" in html  # the new-layout form starts from the built-in layout


def test_it_creates_a_default_layout(bob_client, ws, personas):
    response = bob_client.post(
        url("campaign-layout-new"), {"name": "Plain", "html": HTML, "is_default": "on"}
    )
    assert response.status_code == 302
    layout = Layout.objects.get(workspace=ws, name="Plain")
    assert layout.is_default
    (event,) = events("layout.created")
    assert event.actor_user == personas.bob


def test_it_shows_a_layout_template_error_on_the_html_with_its_line(bob_client, ws):
    bad = "<html><body>\n{{ content }}\n<p>{{ workspace.name | nope }}</p></body></html>"
    response = bob_client.post(url("campaign-layout-new"), {"name": "Bad", "html": bad})
    assert response.status_code == 400
    html = response.content.decode()
    assert re.search(r'name="html"[^>]*aria-invalid="true"', html)
    assert re.search(r'id="id_html_error"><li>layout, line 3: [^<]*nope', html)
    assert not Layout.objects.filter(name="Bad").exists()


def test_it_refuses_a_layout_without_one_content_slot(bob_client, ws):
    response = bob_client.post(
        url("campaign-layout-new"), {"name": "Empty", "html": "<html><body>x</body></html>"}
    )
    assert response.status_code == 400
    assert "exactly one {{ content }}" in response.content.decode()


def test_it_edits_a_layout(bob_client, brand):
    page = bob_client.get(url("campaign-layout-edit", layout_id=brand.pk))
    assert page.status_code == 200 and "Brand" in page.content.decode()
    response = bob_client.post(
        url("campaign-layout-edit", layout_id=brand.pk), {"name": "Brand 2", "html": HTML}
    )
    assert response.status_code == 302
    brand.refresh_from_db()
    assert brand.name == "Brand 2"
    assert events("layout.updated")


def test_it_refuses_to_change_the_html_of_a_layout_campaigns_send_with(bob_client, brand, draft):
    actions.do_update_campaign(draft, {"layout": brand.pk}, actor=SETUP)
    launched(draft)
    response = bob_client.post(
        url("campaign-layout-edit", layout_id=brand.pk),
        {"name": "Brand", "html": HTML.replace("Acme", "ACME")},
    )
    assert response.status_code == 409
    assert "used by campaigns that are sending" in response.content.decode()
    brand.refresh_from_db()
    assert "<h1>Acme</h1>" in brand.html


def test_it_deletes_a_layout_after_confirming(bob_client, brand):
    page = bob_client.get(url("campaign-layout-delete", layout_id=brand.pk))
    assert page.status_code == 200
    assert Layout.objects.filter(pk=brand.pk).exists()
    response = bob_client.post(url("campaign-layout-delete", layout_id=brand.pk))
    assert response.status_code == 302
    assert not Layout.objects.filter(pk=brand.pk).exists()
    assert events("layout.deleted")


def test_it_refuses_to_delete_a_layout_in_use(bob_client, brand, draft):
    actions.do_update_campaign(draft, {"layout": brand.pk}, actor=SETUP)
    launched(draft)
    response = bob_client.post(url("campaign-layout-delete", layout_id=brand.pk))
    assert response.status_code == 409
    assert Layout.objects.filter(pk=brand.pk).exists()


def test_it_shows_an_analyst_the_layouts_read_only(carol_client, brand):
    response = carol_client.get(url("campaign-layouts"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Brand" in html and "New layout" not in html
    assert f"/layouts/{brand.pk}/" not in html
    data = {"name": "X", "html": HTML}
    assert carol_client.post(url("campaign-layout-new"), data).status_code == 403
    assert carol_client.get(url("campaign-layout-edit", layout_id=brand.pk)).status_code == 403
    assert (
        carol_client.post(url("campaign-layout-edit", layout_id=brand.pk), data).status_code == 403
    )
    assert carol_client.post(url("campaign-layout-delete", layout_id=brand.pk)).status_code == 403
    brand.refresh_from_db()
    assert brand.name == "Brand"
    assert Layout.objects.count() == 1


def test_it_hides_acmes_layouts_from_mallory(mallory_client, brand, evil_layout):
    assert mallory_client.get(url("campaign-layouts")).status_code == 404
    own = mallory_client.get(url("campaign-layouts", ws="evil")).content.decode()
    assert "Evil" in own and "Brand" not in own
    for name in ("campaign-layout-edit", "campaign-layout-delete"):
        assert mallory_client.get(url(name, layout_id=brand.pk)).status_code == 404
        assert mallory_client.get(url(name, ws="evil", layout_id=brand.pk)).status_code == 404
        response = mallory_client.post(
            url(name, ws="evil", layout_id=brand.pk), {"name": "Mine", "html": HTML}
        )
        assert response.status_code == 404
    brand.refresh_from_db()
    assert brand.name == "Brand"
