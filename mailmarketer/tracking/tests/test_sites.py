"""The website pages: who may see, add and change sites, and what is refused."""

from __future__ import annotations

import html

import pytest

from mailmarketer.accounts.models import AuditEvent
from mailmarketer.testing import url
from mailmarketer.tracking.models_web import Site
from mailmarketer.tracking.testing_web import make_site


@pytest.fixture
def site(personas):
    return make_site(personas.acme)


def test_it_lets_an_owner_add_a_site_with_default_origins(alice_client, personas):
    response = alice_client.post(
        url("site-create"),
        {
            "name": "Shop",
            "domain": "https://Shop.Acme.test/",
            "ip_mode": "none",
            "ip_days": 7,
            "retention_days": 30,
        },
    )
    site = Site.objects.get(workspace=personas.acme)
    assert response.status_code == 302
    assert (site.domain, site.origin_list()) == (
        "shop.acme.test",
        ["https://shop.acme.test", "https://www.shop.acme.test"],
    )
    assert AuditEvent.objects.filter(event="tracking.site_created").count() == 1
    page = html.unescape(alice_client.get(url("site", site_id=site.pk)).content.decode())
    assert f'data-site="{site.key}"' in page and "/t/mm.js" in page


@pytest.mark.parametrize(
    ("field", "value"),
    [("domain", "not a host"), ("origins", "https://a.test/path"), ("origins", "ftp://a.test")],
)
def test_it_refuses_bad_domains_and_origins_naming_the_field(alice_client, field, value):
    data = {"domain": "acme.test", "ip_mode": "truncate", "ip_days": 7, "retention_days": 30}
    data[field] = value
    response = alice_client.post(url("site-create"), data)
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert not Site.objects.exists()


def test_it_lets_an_analyst_read_but_not_add_or_change(carol_client, site):
    assert carol_client.get(url("sites")).status_code == 200
    assert carol_client.get(url("site", site_id=site.pk)).status_code == 200
    assert carol_client.get(url("site-report", site_id=site.pk)).status_code == 200
    assert carol_client.get(url("site-create")).status_code == 403
    assert (
        carol_client.post(url("site-edit", site_id=site.pk), {"domain": "x.test"}).status_code
        == 403
    )
    site.refresh_from_db()
    assert site.domain == "acme.test"


def test_it_lets_a_manager_change_a_site(alice_client, site):
    response = alice_client.post(
        url("site-edit", site_id=site.pk),
        {
            "name": "Acme",
            "domain": "acme.test",
            "origins": "http://127.0.0.1:8765",
            "ip_mode": "keep",
            "ip_days": 3,
            "retention_days": 90,
        },
    )
    assert response.status_code == 302
    site.refresh_from_db()
    assert (site.origin_list(), site.ip_mode, site.ip_days) == (
        ["http://127.0.0.1:8765"],
        "keep",
        3,
    )


def test_it_shows_another_workspace_nothing(mallory_client, site):
    assert mallory_client.get(url("site", site_id=site.pk)).status_code == 404
    assert mallory_client.get(url("site", ws="evil", site_id=site.pk)).status_code == 404
    assert mallory_client.get(url("site-report", ws="evil", site_id=site.pk)).status_code == 404
    assert site.domain.encode() not in mallory_client.get(url("sites", ws="evil")).content


def test_it_shows_analytics_in_the_navigation_to_those_who_may_read_it(carol_client, personas):
    from mailmarketer.testing import client_for, make_member, make_user

    page = carol_client.get(url("app-dashboard")).content.decode()
    assert url("analytics-home") in page
    assert carol_client.get(url("analytics-home")).url == url("sites")
    dora = make_user("dora@acme.test")
    make_member(personas.acme, dora, "support")
    assert url("analytics-home") not in client_for(dora).get(url("app-dashboard")).content.decode()
