"""/lists and /lists/{id}: allowed, forbidden and cross-workspace for each route; counts."""

from __future__ import annotations

import pytest

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import actions
from mailmarketer.audience.actions import Reason
from mailmarketer.audience.models import MailingList, Subscriber, Subscription

from .audience_data import SETUP, make_list, make_person

pytestmark = pytest.mark.django_db


@pytest.fixture
def news(personas):
    """acme's news list: two confirmed members, one unconfirmed, one unsubscribed."""
    news = make_list(personas.acme, "news", name="News")
    for i in range(4):
        person = make_person(personas.acme, f"m{i}@example.com", lists=[news])
        if i == 2:
            actions.do_unsubscribe(person, [news], actor=SETUP, reason=Reason.BY_SUBSCRIBER)
    Subscription.objects.filter(subscriber__email="m3@example.com").update(status="unconfirmed")
    return news


def post(client, path, body):
    return client.request("POST", path, body)


NEWS_OUT = {
    "name": "News",
    "slug": "news",
    "description": "",
    "visibility": "private",
    "optin": "single",
    "tags": [],
    "counts": {"confirmed": 2, "unconfirmed": 1, "unsubscribed": 1},
}


# -- GET /lists ------------------------------------------------------------------------------


def test_it_lists_lists_with_counts_by_status(tokens, as_token, personas, news):
    make_list(personas.acme, "alpha", name="Alpha")
    response = as_token(tokens.analyst.raw).get("/api/v1/lists")
    assert response.status_code == 200
    lists = response.json()["lists"]
    assert [m["slug"] for m in lists] == ["alpha", "news"]
    assert lists[0]["counts"] == {"confirmed": 0, "unconfirmed": 0, "unsubscribed": 0}
    assert {k: v for k, v in lists[1].items() if k not in ("id", "created_at")} == NEWS_OUT
    assert lists[1]["id"] == news.pk


def test_it_shows_mallory_none_of_acmes_lists(tokens, as_token, personas, news):
    make_list(personas.evil, "evil-news")
    lists = as_token(tokens.mallory.raw).get("/api/v1/lists").json()["lists"]
    assert [m["slug"] for m in lists] == ["evil-news"]
    assert lists[0]["counts"] == {"confirmed": 0, "unconfirmed": 0, "unsubscribed": 0}


# -- POST /lists -----------------------------------------------------------------------------


def test_it_creates_a_list(tokens, as_token):
    response = post(
        as_token(tokens.marketer.raw),
        "/api/v1/lists",
        {
            "name": "Webinars",
            "slug": "webinars",
            "description": "Invitations",
            "visibility": "public",
            "optin": "double",
            "tags": ["events"],
        },
    )
    assert response.status_code == 201
    body = response.json()
    created = MailingList.objects.get(pk=body["id"])
    assert (created.workspace.slug, created.optin, created.tags) == ("acme", "double", ["events"])
    assert body["counts"] == {"confirmed": 0, "unconfirmed": 0, "unsubscribed": 0}
    event = AuditEvent.objects.get(event="list.created")
    assert event.actor_token_id == tokens.marketer.token.pk


def test_it_refuses_a_slug_already_used_with_409(tokens, as_token, news):
    response = post(as_token(tokens.owner.raw), "/api/v1/lists", {"name": "N", "slug": "news"})
    assert response.status_code == 409
    assert response.json() == {
        "code": "conflict",
        "message": "a list with the slug 'news' already exists",
    }
    assert MailingList.objects.count() == 1


def test_it_names_the_invalid_fields_of_a_new_list(tokens, as_token):
    client = as_token(tokens.owner.raw)
    response = post(client, "/api/v1/lists", {"name": "News", "slug": "Not A Slug"})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["slug"]
    response = post(client, "/api/v1/lists", {"slug": "news", "optin": "triple"})
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"name", "optin"}
    assert not MailingList.objects.exists()


def test_it_refuses_list_creation_to_an_analyst(tokens, as_token):
    response = post(as_token(tokens.analyst.raw), "/api/v1/lists", {"name": "N", "slug": "n"})
    assert response.status_code == 403
    assert p.AUDIENCE_MANAGE in response.json()["message"]
    assert not MailingList.objects.exists()


def test_it_creates_mallorys_list_in_her_workspace(tokens, as_token, news):
    # The same slug is free in another workspace: tenants never collide.
    response = post(as_token(tokens.mallory.raw), "/api/v1/lists", {"name": "N", "slug": "news"})
    assert response.status_code == 201
    assert MailingList.objects.get(pk=response.json()["id"]).workspace.slug == "evil"


# -- GET /lists/{id} -------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["id", "slug"])
def test_it_shows_one_list_by_id_or_slug(tokens, as_token, news, key):
    ref = news.pk if key == "id" else "news"
    response = as_token(tokens.analyst.raw).get(f"/api/v1/lists/{ref}")
    assert response.status_code == 200
    body = response.json()
    assert {k: v for k, v in body.items() if k not in ("id", "created_at")} == NEWS_OUT


@pytest.mark.parametrize("key", ["id", "slug"])
def test_it_hides_acmes_list_from_mallory(tokens, as_token, news, key):
    ref = news.pk if key == "id" else "news"
    response = as_token(tokens.mallory.raw).get(f"/api/v1/lists/{ref}")
    assert response.status_code == 404
    assert "News" not in response.content.decode()


# -- PATCH /lists/{id} -----------------------------------------------------------------------


def test_it_changes_a_list(tokens, as_token, news):
    response = as_token(tokens.marketer.raw).patch(
        f"/api/v1/lists/{news.pk}", {"name": "Weekly news", "slug": "weekly", "tags": ["a"]}
    )
    assert response.status_code == 200
    assert response.json()["counts"] == NEWS_OUT["counts"]
    news.refresh_from_db()
    assert (news.name, news.slug, news.tags, news.optin) == (
        "Weekly news",
        "weekly",
        ["a"],
        "single",
    )
    event = AuditEvent.objects.get(event="list.updated")
    assert event.old == {"name": "News", "slug": "news", "tags": []}


def test_it_refuses_renaming_to_a_slug_in_use(tokens, as_token, personas, news):
    make_list(personas.acme, "offers")
    response = as_token(tokens.owner.raw).patch("/api/v1/lists/news", {"slug": "offers"})
    assert response.status_code == 409
    response = as_token(tokens.owner.raw).patch("/api/v1/lists/news", {"visibility": "secret"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "visibility"
    news.refresh_from_db()
    assert (news.slug, news.visibility) == ("news", "private")


def test_it_refuses_list_changes_to_an_analyst(tokens, as_token, news):
    response = as_token(tokens.analyst.raw).patch("/api/v1/lists/news", {"name": "X"})
    assert response.status_code == 403
    news.refresh_from_db()
    assert news.name == "News"


def test_it_never_lets_mallory_change_acmes_list(tokens, as_token, news):
    response = as_token(tokens.mallory.raw).patch(f"/api/v1/lists/{news.pk}", {"name": "Pwned"})
    assert response.status_code == 404
    news.refresh_from_db()
    assert news.name == "News"


# -- DELETE /lists/{id} ----------------------------------------------------------------------


def test_it_deletes_a_list_and_its_memberships_not_its_people(tokens, as_token, news):
    response = as_token(tokens.marketer.raw).request("DELETE", f"/api/v1/lists/{news.pk}")
    assert response.status_code == 204
    assert not MailingList.objects.exists()
    assert not Subscription.objects.exists()
    assert Subscriber.objects.count() == 4
    assert AuditEvent.objects.filter(event="list.deleted").count() == 1


def test_it_refuses_list_deletion_to_an_analyst(tokens, as_token, news):
    assert as_token(tokens.analyst.raw).request("DELETE", "/api/v1/lists/news").status_code == 403
    assert MailingList.objects.filter(pk=news.pk).exists()


def test_it_never_lets_mallory_delete_acmes_list(tokens, as_token, news):
    response = as_token(tokens.mallory.raw).request("DELETE", f"/api/v1/lists/{news.pk}")
    assert response.status_code == 404
    assert MailingList.objects.filter(pk=news.pk).exists()
