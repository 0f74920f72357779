"""First and last names through the API: accepted on create and change, returned, masked."""

from __future__ import annotations

import pytest

from mailmarketer.audience.models import Subscriber

pytestmark = pytest.mark.django_db


def test_it_creates_and_returns_first_and_last_names(tokens, as_token):
    response = as_token(tokens.marketer.raw).request(
        "POST",
        "/api/v1/subscribers",
        {"email": "ann@example.com", "first_name": "Ann", "last_name": "Berg"},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["first_name"], body["last_name"], body["name"]) == ("Ann", "Berg", "Ann Berg")


def test_a_new_last_name_makes_the_name_anew(tokens, as_token):
    client = as_token(tokens.marketer.raw)
    created = client.request(
        "POST",
        "/api/v1/subscribers",
        {"email": "ann@example.com", "first_name": "Ann", "last_name": "Berg"},
    ).json()
    response = client.patch(f"/api/v1/subscribers/{created['id']}", {"last_name": "Lind"})
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Ann Lind"
    assert Subscriber.objects.get().last_name == "Lind"


def test_it_refuses_a_first_name_too_long_or_not_text(tokens, as_token):
    client = as_token(tokens.marketer.raw)
    for value in ("x" * 101, 7):
        response = client.request(
            "POST", "/api/v1/subscribers", {"email": "ann@example.com", "first_name": value}
        )
        assert response.status_code == 422, response.content
        assert "first_name" in response.content.decode()
    assert not Subscriber.objects.exists()


def test_it_masks_first_and_last_names_without_personal_data(tokens, as_token):
    created = (
        as_token(tokens.marketer.raw)
        .request(
            "POST",
            "/api/v1/subscribers",
            {"email": "ann@example.com", "first_name": "Annika", "last_name": "Berg"},
        )
        .json()
    )
    body = as_token(tokens.analyst.raw).get(f"/api/v1/subscribers/{created['id']}").json()
    assert (body["first_name"], body["last_name"]) == ("•••", "•••")


def test_the_bulk_add_takes_first_and_last_names(tokens, as_token, personas):
    from .audience_data import make_list

    make_list(personas.acme, "news")
    response = as_token(tokens.marketer.raw).request(
        "POST",
        "/api/v1/lists/news/subscriptions",
        {
            "subscribers": [
                {"email": "ann@example.com", "first_name": "Ann", "last_name": "Berg"},
                {"email": "bob@example.com", "first_name": "Bob\nBcc: x@evil.example"},
            ],
            "status": "unconfirmed",
        },
    )
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["result"] for r in results] == ["created", "invalid"]
    assert "first name" in results[1]["reason"]
    ann = Subscriber.objects.get(email="ann@example.com")
    assert (ann.first_name, ann.last_name, ann.name) == ("Ann", "Berg", "Ann Berg")
