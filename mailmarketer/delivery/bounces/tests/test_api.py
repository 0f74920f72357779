import json

import pytest
from django.test import Client

from mailmarketer.accounts.permissions import Role
from mailmarketer.audience import actions as audience
from mailmarketer.audience.models import Suppression
from mailmarketer.delivery.bounces import testing
from mailmarketer.delivery.bounces.apply import do_process_bounce
from mailmarketer.delivery.models import Delivery
from mailmarketer.testing import SETUP, events, launch, ledger_rows, make_token


@pytest.fixture
def tokens(personas):
    return {
        role: make_token(personas.acme, role).raw
        for role in (Role.OWNER, Role.ADMIN, Role.MARKETER, Role.ANALYST, Role.SUPPORT)
    } | {"mallory": make_token(personas.evil, Role.OWNER).raw}


def call(token, method, path, body=None):
    kwargs = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    if body is not None:
        kwargs.update(data=json.dumps(body), content_type="application/json")
    return getattr(Client(), method)(path, **kwargs)


@pytest.fixture
def bounced(ws, news, people):
    rows = ledger_rows(launch(ws, [news]), people, [Delivery.Status.SENT] * 3)
    for n, row in enumerate(rows):
        do_process_bounce(
            testing.dsn(row.subscriber.email, token=testing.token_for(row), nonce=str(n)),
            channel="smtp",
        )
    return rows


@pytest.mark.parametrize(
    ("role", "status"),
    [
        (Role.OWNER, 200),
        (Role.ADMIN, 200),
        (Role.MARKETER, 200),
        (Role.ANALYST, 200),
        (Role.SUPPORT, 403),
    ],
)
def test_it_lists_bounces_to_the_roles_that_see_campaigns(tokens, bounced, role, status):
    assert call(tokens[role], "get", "/api/v1/bounces").status_code == status


def test_it_pages_bounces_by_keyset_and_filters_them(tokens, bounced):
    first = call(tokens[Role.OWNER], "get", "/api/v1/bounces?limit=2").json()
    assert len(first["bounces"]) == 2 and first["next_cursor"]
    rest = call(
        tokens[Role.OWNER], "get", f"/api/v1/bounces?limit=2&cursor={first['next_cursor']}"
    ).json()
    assert len(rest["bounces"]) == 1 and rest["next_cursor"] is None
    ids = [b["id"] for b in first["bounces"] + rest["bounces"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 3
    assert call(tokens[Role.OWNER], "get", "/api/v1/bounces?kind=soft").json()["bounces"] == []
    assert call(tokens[Role.OWNER], "get", "/api/v1/bounces?kind=nope").status_code == 422
    assert call(tokens[Role.OWNER], "get", "/api/v1/bounces?cursor=forged").status_code == 422


def test_it_masks_bounce_addresses_for_an_analyst_and_shows_mallory_nothing(tokens, bounced):
    analyst = call(tokens[Role.ANALYST], "get", "/api/v1/bounces").json()["bounces"]
    assert all("•" in b["address"] and "person" not in b["diagnostic"] for b in analyst)
    owner = call(tokens[Role.OWNER], "get", "/api/v1/bounces").json()["bounces"]
    assert {b["address"] for b in owner} == {
        "person0@example.com",
        "person1@example.com",
        "person2@example.com",
    }
    assert call(tokens["mallory"], "get", "/api/v1/bounces").json()["bounces"] == []


def test_it_lists_adds_and_looks_up_suppressions(tokens, bounced, ws):
    listed = call(tokens[Role.ANALYST], "get", "/api/v1/suppressions").json()["suppressions"]
    assert [s["reason"] for s in listed] == ["hard_bounce"] * 3
    added = call(
        tokens[Role.MARKETER],
        "post",
        "/api/v1/suppressions",
        {"email": "new@example.com", "note": "asked by phone"},
    )
    assert added.status_code == 201 and added.json()["reason"] == "manual"
    again = call(
        tokens[Role.MARKETER], "post", "/api/v1/suppressions", {"email": "NEW@example.com"}
    )
    assert again.status_code == 409
    found = call(tokens[Role.OWNER], "get", "/api/v1/suppressions?email=new@example.com").json()
    assert len(found["suppressions"]) == 1
    assert (
        call(
            tokens[Role.ANALYST], "post", "/api/v1/suppressions", {"email": "x@example.com"}
        ).status_code
        == 403
    )
    assert call(
        tokens[Role.MARKETER], "post", "/api/v1/suppressions", {"email": "not an address"}
    ).status_code in (400, 422)
    assert call(tokens["mallory"], "get", "/api/v1/suppressions").json()["suppressions"] == []


def test_it_removes_a_suppression_with_a_reason_and_a_complaint_only_as_owner(tokens, ws):
    bounce = audience.do_add_suppression(
        ws, email="b@example.com", reason="hard_bounce", actor=SETUP
    )
    complaint = audience.do_add_suppression(
        ws, email="c@example.com", reason="complaint", actor=SETUP
    )
    erased = audience.do_add_suppression(ws, email="e@example.com", reason="erased", actor=SETUP)
    path = "/api/v1/suppressions/{}"
    assert call(tokens[Role.MARKETER], "delete", path.format(bounce.pk), {}).status_code == 422
    assert (
        call(tokens["mallory"], "delete", path.format(bounce.pk), {"reason": "typo"}).status_code
        == 404
    )
    assert (
        call(tokens[Role.ANALYST], "delete", path.format(bounce.pk), {"reason": "typo"}).status_code
        == 403
    )
    assert (
        call(
            tokens[Role.MARKETER],
            "delete",
            path.format(bounce.pk),
            {"reason": "the mailbox exists again"},
        ).status_code
        == 204
    )
    assert events("suppression.removed")[-1].new == {"note": "the mailbox exists again"}
    assert (
        call(
            tokens[Role.ADMIN], "delete", path.format(complaint.pk), {"reason": "x" * 5}
        ).status_code
        == 403
    )
    assert (
        call(tokens[Role.OWNER], "delete", path.format(erased.pk), {"reason": "x" * 5}).status_code
        == 409
    )
    assert (
        call(
            tokens[Role.OWNER], "delete", path.format(complaint.pk), {"reason": "they wrote to ask"}
        ).status_code
        == 204
    )
    assert list(Suppression.objects.values_list("reason", flat=True)) == ["erased"]
