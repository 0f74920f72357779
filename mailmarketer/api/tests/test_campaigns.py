"""/campaigns: every route allowed, forbidden (403) and across workspaces (mallory's token sees
and changes nothing of acme's); template errors on their field with the line; transitions with
their audit rows; test sends to the outbox; the ledger masked without personal data."""

from __future__ import annotations

import re
import zoneinfo
from datetime import timedelta

import pytest
from django.utils.timezone import now

from mailmarketer import testing
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import actions as audience
from mailmarketer.audience.actions import Reason
from mailmarketer.campaigns import actions
from mailmarketer.campaigns.models import Campaign
from mailmarketer.delivery import campaign_actions
from mailmarketer.delivery.models import Delivery
from mailmarketer.delivery.status import MOVES, moves_for
from mailmarketer.lib import outbox

pytestmark = pytest.mark.django_db
SETUP = Actor.system("test setup")
Status = Campaign.Status
BASE = "/api/v1/campaigns"


# acme ready to send (a postal address, a time zone that is not UTC) and its list, as the
# campaign pages' tests have them.
ws, news = testing.ws, testing.news


@pytest.fixture
def people(ws, news):
    found = []
    for i in range(3):
        person = audience.do_create_subscriber(ws, email=f"p{i}@example.com", actor=SETUP)
        audience.do_subscribe(person, [news], actor=SETUP, reason=Reason.BY_ADMIN, confirmed=True)
        found.append(person)
    return found


@pytest.fixture
def draft(ws, news):
    return actions.do_create_campaign(
        ws,
        actor=SETUP,
        name="Autumn",
        subject="Hello {{ subscriber.first_name }}",
        body="Read [the post](https://acme.test/post).",
        lists=[news],
    )


def post(client, path, body=None):
    return client.request("POST", path, body)


def one(campaign) -> str:
    return f"{BASE}/{campaign.uuid}"


def events(name):
    return list(AuditEvent.objects.filter(event=name).order_by("id"))


def launch(campaign):
    campaign_actions.do_start_campaign(campaign, actor=SETUP)
    campaign.refresh_from_db()
    return campaign


# -- create --------------------------------------------------------------------------------------


def test_it_creates_a_draft(tokens, as_token, news):
    response = post(
        as_token(tokens.marketer.raw),
        BASE,
        {
            "name": "Winter",
            "subject": "Hi {{ subscriber.first_name }}",
            "body": "# Sale",
            "lists": ["news"],
            "headers": [["X-Code", "w26"]],
            "reply_to": "help@acme.test",
        },
    )
    assert response.status_code == 201
    body = response.json()
    campaign = Campaign.objects.get(uuid=body["id"])
    assert campaign.workspace.slug == "acme" and campaign.status == Status.DRAFT
    assert body["status"] == "draft" and body["progress"] is None
    assert body["lists"] == [{"id": news.pk, "slug": "news", "name": "News"}]
    assert body["headers"] == [["X-Code", "w26"]]
    assert (body["kind"], body["body_format"], body["archive"]) == ("marketing", "markdown", False)
    (event,) = events("campaign.created")
    assert event.actor_token_id == tokens.marketer.token.pk


def test_it_reports_a_template_error_on_its_field_with_the_line(tokens, as_token):
    response = post(
        as_token(tokens.owner.raw),
        BASE,
        {"name": "Bad", "subject": "Hi", "body": "one\ntwo\n{{ subscriber.name | shout }}"},
    )
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "body"
    assert error["message"].startswith("body, line 3:") and "shout" in error["message"]
    assert not Campaign.objects.exists()


def test_it_reports_bad_fields_by_name(tokens, as_token, personas):
    client = as_token(tokens.owner.raw)
    theirs = audience.do_create_list(personas.evil, name="E", slug="evil-list", actor=SETUP)
    cases = [
        ({"headers": [["Bcc", "all@evil.test"]]}, "headers"),
        ({"headers": [["X-A", "x\r\nBcc: all@evil.test"]]}, "headers"),
        ({"from_email": "not an address"}, "from_email"),
        ({"lists": [theirs.pk]}, "lists"),
        ({"lists": ["no-such-list"]}, "lists"),
        ({"subject": "{{ oops"}, "subject"),
        ({"layout": 999999}, "layout"),
        ({"nmae": "typo"}, "nmae"),
        ({"body_format": "rtf"}, "body_format"),
        ({"headers": [["X-Only-A-Name"]]}, "headers.0"),
    ]
    for extra, field in cases:
        response = post(client, BASE, {"name": "N", "subject": "S", **extra})
        assert response.status_code == 422, extra
        assert [e["field"] for e in response.json()["errors"]] == [field], extra
    assert not Campaign.objects.exists()


def test_it_refuses_creation_to_an_analyst(tokens, as_token):
    response = post(as_token(tokens.analyst.raw), BASE, {"name": "N", "subject": "S"})
    assert response.status_code == 403
    assert "campaigns.manage" in response.json()["message"]
    assert not Campaign.objects.exists()


def test_it_creates_mallorys_campaign_in_her_workspace_without_acmes_lists(
    tokens, as_token, news, personas
):
    client = as_token(tokens.mallory.raw)
    response = post(client, BASE, {"name": "Evil", "subject": "S", "lists": [news.pk]})
    assert response.status_code == 422
    response = post(client, BASE, {"name": "Evil", "subject": "S"})
    assert response.status_code == 201
    assert Campaign.objects.get(uuid=response.json()["id"]).workspace == personas.evil


# -- read ----------------------------------------------------------------------------------------


def test_it_lists_campaigns_newest_first_in_pages(tokens, as_token, ws):
    made = [
        actions.do_create_campaign(ws, actor=SETUP, name=f"C{i}", subject="S", body="B")
        for i in range(5)
    ]
    client = as_token(tokens.analyst.raw)
    first = client.get(f"{BASE}?limit=2").json()
    assert [c["name"] for c in first["campaigns"]] == ["C4", "C3"]
    second = client.get(f"{BASE}?limit=2&cursor={first['next_cursor']}").json()
    third = client.get(f"{BASE}?limit=2&cursor={second['next_cursor']}").json()
    assert [c["name"] for c in second["campaigns"] + third["campaigns"]] == ["C2", "C1", "C0"]
    assert third["next_cursor"] is None
    assert first["campaigns"][0]["id"] == str(made[4].uuid)
    bad = client.get(f"{BASE}?cursor=forged")
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "cursor"


def test_it_filters_the_list_by_status_and_counts_sent_of_total(tokens, as_token, draft, people):
    running = launch(actions.do_clone_campaign(draft, actor=SETUP, name="Running"))
    for person, status in zip(people, ["sent", "queued", "failed"], strict=True):
        Delivery.objects.create(
            workspace=running.workspace, campaign=running, subscriber=person, status=status
        )
    body = as_token(tokens.analyst.raw).get(f"{BASE}?status=running").json()
    (item,) = body["campaigns"]
    assert (item["name"], item["sent"], item["total"]) == ("Running", 1, 3)
    bad = as_token(tokens.analyst.raw).get(f"{BASE}?status=exploded")
    assert bad.status_code == 422


def test_it_shows_mallory_none_of_acmes_campaigns(tokens, as_token, draft):
    client = as_token(tokens.mallory.raw)
    assert client.get(BASE).json()["campaigns"] == []
    response = client.get(one(draft))
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "no such campaign in this workspace"}


def test_it_reads_one_campaign_with_its_progress(tokens, as_token, draft, people):
    launch(draft)
    Delivery.objects.create(
        workspace=draft.workspace, campaign=draft, subscriber=people[0], status="sent",
        sent_at=now(),
    )  # fmt: skip
    body = as_token(tokens.analyst.raw).get(one(draft)).json()
    assert body["status"] == "running"
    assert body["body"] == "Read [the post](https://acme.test/post)."
    assert body["progress"]["counts"]["sent"] == 1
    assert (body["progress"]["sent"], body["progress"]["total"]) == (1, 1)
    assert body["progress"]["rate"] > 0


def page_moves(client, campaign) -> set[str]:
    """The moves the campaign page offers as buttons (forms, and the link to cancel)."""
    html = client.get(f"/app/acme/campaigns/{campaign.pk}/").content.decode()
    found = set(re.findall(r'action="/app/acme/campaigns/\d+/(\w+)/"', html))
    if re.search(r'href="/app/acme/campaigns/\d+/start/"', html):  # its own page first
        found.add("start")
    if re.search(r'href="/app/acme/campaigns/\d+/cancel/"', html):
        found.add("cancel")
    return found & set(MOVES)


@pytest.mark.parametrize("state", ["draft", "scheduled", "running", "paused"])
def test_it_lists_the_moves_the_campaign_page_offers(
    tokens, as_token, alice_client, draft, people, state
):
    if state == "scheduled":
        campaign_actions.do_schedule_campaign(draft, now() + timedelta(days=1), actor=SETUP)
    elif state in ("running", "paused"):
        launch(draft)
    if state == "paused":
        campaign_actions.do_pause_campaign(draft, actor=SETUP)
    if state == "running":  # a failed message to retry
        Delivery.objects.create(
            workspace=draft.workspace, campaign=draft, subscriber=people[0], status="failed"
        )
    expected = [m for m in moves_for(state) if m != "retry" or state == "running"]
    moves = as_token(tokens.owner.raw).get(one(draft)).json()["moves"]
    assert moves == expected  # the owner may make every move
    assert set(moves) == page_moves(alice_client, draft)
    analyst = as_token(tokens.analyst.raw).get(one(draft)).json()["moves"]
    assert analyst == moves  # what the status allows, whoever asks; the routes check the role


def test_it_answers_404_for_a_malformed_or_numeric_id(tokens, as_token, draft):
    client = as_token(tokens.owner.raw)
    assert client.get(f"{BASE}/not-a-uuid").status_code == 404
    assert client.get(f"{BASE}/{draft.pk}").status_code == 404  # uuids only


# -- change and delete -----------------------------------------------------------------------------


def test_it_patches_a_draft(tokens, as_token, draft):
    response = as_token(tokens.marketer.raw).patch(
        one(draft), {"name": "Autumn, final", "archive": True, "layout": None}
    )
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["archive"]) == ("Autumn, final", True)
    (event,) = events("campaign.updated")
    assert event.new == {"name": "Autumn, final", "archive": True}


def test_it_refuses_to_patch_a_running_campaign(tokens, as_token, draft):
    launch(draft)
    response = as_token(tokens.owner.raw).patch(one(draft), {"name": "Late"})
    assert response.status_code == 409
    assert "cannot be edited" in response.json()["message"]


def test_it_refuses_patch_and_delete_to_an_analyst_and_mallory(tokens, as_token, draft):
    for token, status in ((tokens.analyst, 403), (tokens.mallory, 404)):
        client = as_token(token.raw)
        assert client.patch(one(draft), {"name": "Mine"}).status_code == status
        assert client.request("DELETE", one(draft)).status_code == status
    draft.refresh_from_db()
    assert draft.name == "Autumn"


def test_it_deletes_a_draft_only(tokens, as_token, draft):
    client = as_token(tokens.owner.raw)
    other = launch(actions.do_clone_campaign(draft, actor=SETUP))
    assert client.request("DELETE", one(other)).status_code == 409
    assert client.request("DELETE", one(draft)).status_code == 204
    assert not Campaign.objects.filter(pk=draft.pk).exists()
    assert events("campaign.deleted")


# -- transitions -----------------------------------------------------------------------------------


def test_it_starts_pauses_resumes_and_cancels_with_audit_rows(tokens, as_token, draft):
    client = as_token(tokens.marketer.raw)
    response = post(client, f"{one(draft)}/start")
    assert response.status_code == 200 and response.json()["status"] == "running"
    assert response.json()["progress"] is not None
    assert post(client, f"{one(draft)}/pause").json()["status"] == "paused"
    assert post(client, f"{one(draft)}/resume").json()["status"] == "running"
    response = post(client, f"{one(draft)}/cancel")
    assert response.json()["status"] == "cancelled"
    for name in ("started", "paused", "resumed", "cancelled"):
        (event,) = events(f"campaign.{name}")
        assert event.actor_token_id == tokens.marketer.token.pk


def test_it_refuses_a_transition_the_status_does_not_allow(tokens, as_token, draft):
    response = post(as_token(tokens.owner.raw), f"{one(draft)}/pause")
    assert response.status_code == 409
    assert "cannot go from draft to paused" in response.json()["message"]


def test_it_refuses_to_start_without_a_postal_address(tokens, as_token, draft, ws):
    ws.postal_address = ""
    ws.save()
    response = post(as_token(tokens.owner.raw), f"{one(draft)}/start")
    assert response.status_code == 400
    assert response.json()["code"] == "postal_address_required"
    assert "postal address" in response.json()["message"]
    draft.refresh_from_db()
    assert draft.status == Status.DRAFT


def test_it_schedules_in_the_workspace_time_zone(tokens, as_token, draft):
    when = (now() + timedelta(days=2)).astimezone(zoneinfo.ZoneInfo("Europe/Berlin"))
    local = when.strftime("%Y-%m-%dT%H:%M")
    client = as_token(tokens.marketer.raw)
    response = post(client, f"{one(draft)}/schedule", {"at": local})
    assert response.status_code == 200
    draft.refresh_from_db()
    assert draft.scheduled_at == when.replace(second=0, microsecond=0)
    past = post(client, f"{one(draft)}/schedule", {"at": "2001-01-01T09:00"})
    assert past.status_code == 422 and past.json()["errors"][0]["field"] == "at"
    response = post(client, f"{one(draft)}/unschedule")
    assert response.json()["status"] == "draft"


def test_it_retries_failed_deliveries(tokens, as_token, draft, people):
    launch(draft)
    Campaign.objects.filter(pk=draft.pk).update(status="finished", finished_at=now())
    for person in people:
        Delivery.objects.create(
            workspace=draft.workspace, campaign=draft, subscriber=person, status="failed"
        )
    response = post(as_token(tokens.marketer.raw), f"{one(draft)}/retry")
    assert response.status_code == 200
    assert response.json()["requeued"] == 3
    assert response.json()["campaign"]["status"] == "running"
    assert set(Delivery.objects.values_list("status", flat=True)) == {"queued"}
    assert events("campaign.retried")[0].actor_token_id == tokens.marketer.token.pk


@pytest.mark.parametrize("action", ["start", "pause", "resume", "cancel", "retry"])
def test_it_refuses_sending_actions_to_an_analyst(tokens, as_token, draft, action):
    response = post(as_token(tokens.analyst.raw), f"{one(draft)}/{action}")
    assert response.status_code == 403
    assert "campaigns.send" in response.json()["message"]
    draft.refresh_from_db()
    assert draft.status == Status.DRAFT


@pytest.mark.parametrize(
    "action", ["start", "pause", "resume", "cancel", "retry", "schedule", "unschedule", "test"]
)
def test_it_lets_mallory_act_on_no_acme_campaign(tokens, as_token, draft, action):
    body = {"schedule": {"at": "2099-01-01T09:00"}, "test": {"to": ["m@evil.test"]}}.get(action)
    response = post(as_token(tokens.mallory.raw), f"{one(draft)}/{action}", body)
    assert response.status_code == 404
    draft.refresh_from_db()
    assert draft.status == Status.DRAFT
    assert not events("campaign.test_sent")


@pytest.mark.parametrize("action", ["schedule", "unschedule", "test"])
def test_it_refuses_manage_actions_to_an_analyst(tokens, as_token, draft, action):
    body = {"schedule": {"at": "2099-01-01T09:00"}, "test": {"to": ["c@acme.test"]}}.get(action)
    response = post(as_token(tokens.analyst.raw), f"{one(draft)}/{action}", body)
    assert response.status_code == 403
    draft.refresh_from_db()
    assert draft.status == Status.DRAFT


# -- test sends ------------------------------------------------------------------------------------


def test_it_sends_a_test_to_the_outbox(
    tokens, as_token, draft, ws, people, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(
            as_token(tokens.marketer.raw),
            f"{one(draft)}/test",
            {"to": ["Boss@Acme.test", "Boss@acme.test", "copy@elsewhere.test"]},
        )
    assert response.status_code == 200
    assert response.json() == {"recipients": 2, "subject": "Hello Jane"}
    entries, total = outbox.list_messages(viewer=outbox.Viewer(ws.pk, "x@acme.test"))
    assert total == 2 and {e.subject for e in entries} == {"[Test] Hello Jane"}
    with django_capture_on_commit_callbacks(execute=True):
        response = post(
            as_token(tokens.owner.raw),
            f"{one(draft)}/test",
            {"to": ["boss@acme.test"], "subscriber": str(people[0].uuid)},
        )
    assert response.json()["subject"] == "Hello"  # p0 has no name, unlike the sample Jane
    assert [e.new.get("as_subscriber") for e in events("campaign.test_sent")] == [
        None,
        str(people[0].uuid),
    ]


def test_it_reports_bad_test_addresses_on_to(tokens, as_token, draft, ws):
    client = as_token(tokens.owner.raw)
    response = post(client, f"{one(draft)}/test", {"to": ["boss@acme.test", "nope"]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "to"
    response = post(client, f"{one(draft)}/test", {"to": []})
    assert response.status_code == 422
    response = post(client, f"{one(draft)}/test", {"to": ["a@b.test"], "subscriber": "nobody"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "subscriber"
    assert outbox.list_messages(viewer=outbox.Viewer(ws.pk, "x@acme.test"))[1] == 0
    assert not events("campaign.test_sent")


def test_it_refuses_to_render_a_test_as_another_workspaces_subscriber(
    tokens, as_token, personas, draft
):
    mine = actions.do_create_campaign(personas.evil, actor=SETUP, name="E", subject="S", body="B")
    path = f"{BASE}/{mine.uuid}/test"
    response = post(
        as_token(tokens.mallory.raw),
        path,
        {"to": ["m@evil.test"], "subscriber": str(audience_person(personas.acme).uuid)},
    )
    assert response.status_code == 422
    assert not events("campaign.test_sent")


def audience_person(workspace):
    return audience.do_create_subscriber(workspace, email="secret@example.com", actor=SETUP)


# -- the ledger ------------------------------------------------------------------------------------


@pytest.fixture
def ledger(draft, people):
    launch(draft)
    for person, status in zip(people, ["sent", "failed", "skipped"], strict=True):
        Delivery.objects.create(
            workspace=draft.workspace,
            campaign=draft,
            subscriber=person,
            status=status,
            smtp_reply="550 5.1.1 <b>no</b>" if status == "failed" else "",
            skip_reason="unsubscribed" if status == "skipped" else "",
        )
    return draft


def test_it_lists_the_ledger_unmasked_with_an_audit_row(tokens, as_token, ledger):
    body = as_token(tokens.owner.raw).get(f"{one(ledger)}/deliveries").json()
    assert [d["recipient"]["email"] for d in body["deliveries"]] == [
        "p0@example.com",
        "p1@example.com",
        "p2@example.com",
    ]
    assert body["deliveries"][1]["smtp_reply"] == "550 5.1.1 <b>no</b>"  # JSON: as it was said
    assert [d["skip_reason"] for d in body["deliveries"]] == ["", "", "unsubscribed"]
    assert body["next_cursor"] is None
    (event,) = events("subscriber.listed")
    assert event.new == {"count": 3} and event.actor_token_id == tokens.owner.token.pk


def test_it_masks_the_ledger_for_an_analyst_without_an_audit_row(tokens, as_token, ledger):
    body = as_token(tokens.analyst.raw).get(f"{one(ledger)}/deliveries").json()
    assert [d["recipient"]["email"] for d in body["deliveries"]] == ["p•••@example.com"] * 3
    assert not events("subscriber.listed")


def test_it_masks_addresses_inside_the_relays_reply_for_an_analyst(tokens, as_token, ledger):
    reply = "550 5.1.1 <p1@example.com>: Recipient address rejected"
    Delivery.objects.filter(campaign=ledger, status="failed").update(smtp_reply=reply)
    response = as_token(tokens.analyst.raw).get(f"{one(ledger)}/deliveries?status=failed")
    assert "p1@example.com" not in response.content.decode()
    (failed,) = response.json()["deliveries"]
    assert failed["smtp_reply"] == "550 5.1.1 <p•••@example.com>: Recipient address rejected"
    owner = as_token(tokens.owner.raw).get(f"{one(ledger)}/deliveries?status=failed").json()
    assert owner["deliveries"][0]["smtp_reply"] == reply


def test_it_filters_and_pages_the_ledger(tokens, as_token, ledger):
    client = as_token(tokens.owner.raw)
    body = client.get(f"{one(ledger)}/deliveries?status=failed").json()
    assert [d["status"] for d in body["deliveries"]] == ["failed"]
    first = client.get(f"{one(ledger)}/deliveries?limit=2").json()
    second = client.get(f"{one(ledger)}/deliveries?limit=2&cursor={first['next_cursor']}").json()
    emails = [d["recipient"]["email"] for d in first["deliveries"] + second["deliveries"]]
    assert emails == ["p0@example.com", "p1@example.com", "p2@example.com"]
    assert second["next_cursor"] is None
    assert client.get(f"{one(ledger)}/deliveries?status=lost").status_code == 422
    assert client.get(f"{one(ledger)}/deliveries?cursor=x").status_code == 422


def test_it_hides_the_ledger_from_mallory(tokens, as_token, ledger):
    response = as_token(tokens.mallory.raw).get(f"{one(ledger)}/deliveries")
    assert response.status_code == 404
    assert not events("subscriber.listed")
