"""No cache may keep a staff page: `no-store, private` on every page that does not set its own
caching (lib/http.PrivateByDefaultMiddleware)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import actions

pytestmark = pytest.mark.django_db


def cache_control(response) -> set[str]:
    return {part.strip() for part in response.get("Cache-Control", "").split(",") if part}


@pytest.fixture
def zelda(personas):
    return actions.do_create_subscriber(
        personas.acme, email="zelda@example.com", name="Zelda", actor=Actor.system("test")
    )


def test_it_forbids_caching_staff_pages(alice_client, carol_client, zelda):
    pages = [
        "/app/acme/",
        reverse("audience-subscribers", kwargs={"ws": "acme"}),
        reverse("audience-subscriber", kwargs={"ws": "acme", "sid": str(zelda.uuid)}),
        reverse("audience-suppression", kwargs={"ws": "acme"}),
        reverse("segment-list", kwargs={"ws": "acme"}),
        reverse("audience-imports", kwargs={"ws": "acme"}),
        "/app/acme/outbox/",
        "/app/acme/audit/",
    ]
    for page in pages:
        response = alice_client.get(page)
        assert response.status_code == 200, page
        assert {"no-store", "private"} <= cache_control(response), page
    refused = carol_client.get(reverse("audience-imports", kwargs={"ws": "acme"}))
    assert refused.status_code == 403
    assert {"no-store", "private"} <= cache_control(refused)


def test_it_keeps_a_views_own_caching(alice_client):
    # The outbox pages' never_cache says more than the default; it is kept as it is.
    response = alice_client.get("/app/acme/outbox/")
    assert "must-revalidate" in cache_control(response)


def test_it_lets_the_vendored_static_files_be_cached(client):
    response = client.get("/static/web/app.css")
    assert response.status_code == 200
    assert "public" in cache_control(response) and "no-store" not in cache_control(response)
