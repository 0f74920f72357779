"""/senders and /dkim: allowed, forbidden and cross-workspace for every route; passwords and
private keys never answered; the connection test against a real SMTP server."""

from __future__ import annotations

import json

import dkim as dkimpy
import pytest
from django.db import connection

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.api.access import declared_permission, operations
from mailmarketer.api.urls import api
from mailmarketer.delivery import actions
from mailmarketer.delivery.dkim import DkimSigner
from mailmarketer.delivery.models import DkimKey, SmtpServer
from mailmarketer.delivery.testing.smtpd import ScriptedSmtpServer

pytestmark = pytest.mark.django_db

PASSWORD = "api-relay-s3cret"

ROUTES = {
    ("GET", "/senders"): p.SETTINGS_VIEW,
    ("POST", "/senders"): p.SETTINGS_MANAGE,
    ("GET", "/senders/{sender_id}"): p.SETTINGS_VIEW,
    ("PATCH", "/senders/{sender_id}"): p.SETTINGS_MANAGE,
    ("DELETE", "/senders/{sender_id}"): p.SETTINGS_MANAGE,
    ("POST", "/senders/{sender_id}/test"): p.SETTINGS_MANAGE,
    ("GET", "/dkim"): p.SETTINGS_VIEW,
    ("POST", "/dkim"): p.SETTINGS_MANAGE,
    ("POST", "/dkim/{key_id}/rotate"): p.SETTINGS_MANAGE,
    ("DELETE", "/dkim/{key_id}"): p.SETTINGS_MANAGE,
}


@pytest.fixture
def relay(personas):
    return actions.do_create_smtp_server(
        personas.acme,
        actor=Actor.for_user(personas.alice),
        name="Office relay",
        host="smtp.acme.test",
        username="mm",
        password=PASSWORD,
    )


@pytest.fixture
def key(personas):
    return actions.do_generate_dkim_key(
        personas.acme, domain="acme.test", selector="mm2026", actor=Actor.for_user(personas.alice)
    )


def send(client, method, path, body=None):
    return client.request(method, path, body)


def secrets_of_acme() -> list[str]:
    values = [PASSWORD]
    for key in DkimKey.objects.filter(workspace__slug="acme"):
        values.extend(line for line in key.private_key.splitlines() if "-----" not in line)
    return values


def assert_no_secret(response):
    text = response.content.decode()
    assert 'password": "' not in text
    for secret in secrets_of_acme():
        assert secret not in text


def test_it_declares_the_permission_of_each_route():
    found = {(method, path): declared_permission(op) for method, path, op in operations(api)}
    assert ROUTES.items() <= found.items()


# -- GET /senders ------------------------------------------------------------------------------


def test_it_lists_senders_without_their_passwords(tokens, as_token, relay):
    response = as_token(tokens.marketer.raw).get("/api/v1/senders")
    assert response.status_code == 200
    body = response.json()
    assert body["uses_outbox"] is False
    [sender] = body["senders"]
    assert {k: v for k, v in sender.items() if k != "created_at"} == {
        "id": relay.pk,
        "name": "Office relay",
        "host": "smtp.acme.test",
        "port": 587,
        "tls_mode": "starttls",
        "verify_certificate": True,
        "username": "mm",
        "password_set": True,
        "max_connections": 4,
        "messages_per_second": 0,
        "hourly_cap": 0,
        "daily_cap": 0,
        "weight": 1,
        "enabled": True,
    }
    assert_no_secret(response)


def test_it_says_mail_goes_to_the_outbox_without_senders(tokens, as_token):
    body = as_token(tokens.owner.raw).get("/api/v1/senders").json()
    assert body == {"senders": [], "uses_outbox": True}


def test_it_refuses_the_senders_to_the_analyst(tokens, as_token, relay):
    response = as_token(tokens.analyst.raw).get("/api/v1/senders")
    assert response.status_code == 403
    assert p.SETTINGS_VIEW in response.json()["message"]


def test_it_shows_mallory_none_of_acmes_senders(tokens, as_token, relay):
    body = as_token(tokens.mallory.raw).get("/api/v1/senders").json()
    assert body == {"senders": [], "uses_outbox": True}


# -- POST /senders -----------------------------------------------------------------------------


def test_it_adds_a_sender_and_stores_the_password_encrypted(tokens, as_token, personas):
    response = send(
        as_token(tokens.owner.raw),
        "POST",
        "/api/v1/senders",
        {
            "name": "Postmark",
            "host": "SMTP.postmark.example",
            "port": 2525,
            "tls_mode": "implicit",
            "username": "token",
            "password": PASSWORD,
            "max_connections": 8,
            "messages_per_second": 100,
            "hourly_cap": 10000,
            "daily_cap": 100000,
            "weight": 3,
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert body["host"] == "smtp.postmark.example"
    assert body["password_set"] is True
    assert "password" not in body
    assert_no_secret(response)
    server = SmtpServer.objects.get(pk=body["id"])
    assert server.workspace == personas.acme
    assert server.password == PASSWORD
    with connection.cursor() as cursor:
        table = connection.ops.quote_name(SmtpServer._meta.db_table)
        cursor.execute(f"SELECT password FROM {table} WHERE id = %s", [server.pk])  # noqa: S608
        raw = cursor.fetchone()[0]
    assert raw.startswith("fernet:") and PASSWORD not in raw
    event = AuditEvent.objects.get(event="sending.server_created")
    assert event.actor_token == tokens.owner.token
    assert event.new["password"] == "set"
    assert PASSWORD not in json.dumps(event.new)


def test_it_refuses_to_let_the_marketer_add_a_sender(tokens, as_token):
    body = {"name": "Mine", "host": "smtp.example.com"}
    response = send(as_token(tokens.marketer.raw), "POST", "/api/v1/senders", body)
    assert response.status_code == 403
    assert p.SETTINGS_MANAGE in response.json()["message"]
    assert not SmtpServer.objects.exists()


def test_it_adds_mallorys_sender_to_her_workspace_only(tokens, as_token, personas):
    body = {"name": "Evil relay", "host": "smtp.evil.test"}
    response = send(as_token(tokens.mallory.raw), "POST", "/api/v1/senders", body)
    assert response.status_code == 201
    assert SmtpServer.objects.get().workspace == personas.evil
    assert as_token(tokens.owner.raw).get("/api/v1/senders").json()["senders"] == []


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"host": "smtp example.com"}, "host", "is not a host name or an IP address"),
        ({"port": 70000}, "port", "less than or equal to 65535"),
        ({"port": "25"}, "port", "Input should be a valid integer"),
        ({"tls_mode": "ssl"}, "tls_mode", "Input should be 'none', 'starttls' or 'implicit'"),
        ({"password": "pw"}, "password", "a password needs a username"),
        ({"weight": 0}, "weight", "greater than or equal to 1"),
        ({"verify": False}, "verify", "unknown field"),
    ],
)
def test_it_refuses_bad_sender_values_naming_the_field(tokens, as_token, body, field, message):
    payload = {"name": "Relay", "host": "smtp.example.com", **body}
    response = send(as_token(tokens.owner.raw), "POST", "/api/v1/senders", payload)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert any(e["field"] == field and message in e["message"] for e in errors), errors
    assert not SmtpServer.objects.exists()


def test_it_refuses_a_sender_name_in_use(tokens, as_token, relay):
    body = {"name": "office relay", "host": "smtp.example.com"}
    response = send(as_token(tokens.owner.raw), "POST", "/api/v1/senders", body)
    assert response.status_code == 409
    assert response.json() == {
        "code": "name_taken",
        "message": "a server named “office relay” already exists in this workspace",
    }


# -- GET /senders/{id} -------------------------------------------------------------------------


def test_it_shows_one_sender(tokens, as_token, relay):
    response = as_token(tokens.marketer.raw).get(f"/api/v1/senders/{relay.pk}")
    assert response.status_code == 200
    assert response.json()["name"] == "Office relay"
    assert_no_secret(response)


def test_it_refuses_one_sender_to_the_analyst(tokens, as_token, relay):
    assert as_token(tokens.analyst.raw).get(f"/api/v1/senders/{relay.pk}").status_code == 403


def test_it_hides_acmes_sender_from_mallory(tokens, as_token, relay):
    response = as_token(tokens.mallory.raw).get(f"/api/v1/senders/{relay.pk}")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "no such sender in this workspace"}


# -- PATCH /senders/{id} -----------------------------------------------------------------------


def test_it_changes_only_what_is_sent_and_keeps_the_password(tokens, as_token, relay):
    response = send(
        as_token(tokens.owner.raw),
        "PATCH",
        f"/api/v1/senders/{relay.pk}",
        {"port": 2525, "daily_cap": 500},
    )
    assert response.status_code == 200
    assert (response.json()["port"], response.json()["daily_cap"]) == (2525, 500)
    assert response.json()["password_set"] is True
    assert SmtpServer.objects.get(pk=relay.pk).password == PASSWORD
    assert_no_secret(response)


def test_it_removes_the_password_with_an_empty_one(tokens, as_token, relay):
    response = send(
        as_token(tokens.owner.raw), "PATCH", f"/api/v1/senders/{relay.pk}", {"password": ""}
    )
    assert response.json()["password_set"] is False
    assert SmtpServer.objects.get(pk=relay.pk).password == ""


def test_it_asks_for_the_password_again_with_a_new_host(tokens, as_token, relay):
    owner = as_token(tokens.owner.raw)
    path = f"/api/v1/senders/{relay.pk}"
    response = send(owner, "PATCH", path, {"host": "mx.attacker.example"})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "password"
    assert error["message"].startswith("enter the password again")
    assert SmtpServer.objects.get(pk=relay.pk).host == "smtp.acme.test"
    response = send(owner, "PATCH", path, {"host": "mx.new.example", "password": PASSWORD})
    assert response.status_code == 200


def test_it_refuses_null_in_a_patch(tokens, as_token, relay):
    response = send(
        as_token(tokens.owner.raw), "PATCH", f"/api/v1/senders/{relay.pk}", {"password": None}
    )
    assert response.status_code == 422
    assert SmtpServer.objects.get(pk=relay.pk).password == PASSWORD


def test_it_refuses_patches_to_the_marketer_and_mallory(tokens, as_token, relay):
    path = f"/api/v1/senders/{relay.pk}"
    response = send(as_token(tokens.marketer.raw), "PATCH", path, {"port": 25})
    assert response.status_code == 403
    assert send(as_token(tokens.mallory.raw), "PATCH", path, {"port": 25}).status_code == 404
    assert SmtpServer.objects.get(pk=relay.pk).port == 587


# -- DELETE /senders/{id} ----------------------------------------------------------------------


def test_it_deletes_a_sender(tokens, as_token, relay):
    response = send(as_token(tokens.owner.raw), "DELETE", f"/api/v1/senders/{relay.pk}")
    assert response.status_code == 204
    assert not SmtpServer.objects.exists()
    assert AuditEvent.objects.get(event="sending.server_deleted").actor_token == tokens.owner.token


def test_it_refuses_deletes_to_the_marketer_and_mallory(tokens, as_token, relay):
    path = f"/api/v1/senders/{relay.pk}"
    assert send(as_token(tokens.marketer.raw), "DELETE", path).status_code == 403
    assert send(as_token(tokens.mallory.raw), "DELETE", path).status_code == 404
    assert SmtpServer.objects.filter(pk=relay.pk).exists()


def test_it_refuses_to_delete_the_relay_of_a_running_campaign(tokens, as_token, relay, personas):
    from mailmarketer.campaigns.models import Campaign

    Campaign.objects.create(workspace=personas.acme, name="Autumn news", status="running")
    response = send(as_token(tokens.owner.raw), "DELETE", f"/api/v1/senders/{relay.pk}")
    assert response.status_code == 409
    assert "local outbox" in response.json()["message"]


# -- POST /senders/{id}/test -------------------------------------------------------------------


def local_sender(personas, smtpd, password):
    return actions.do_create_smtp_server(
        personas.acme,
        actor=Actor.system(),
        name="Local",
        host="127.0.0.1",
        port=smtpd.port,
        tls_mode="none",
        username="mm",
        password=password,
    )


def test_it_tests_a_sender_and_answers_what_the_relay_offers(tokens, as_token, personas):
    with ScriptedSmtpServer(auth=("mm", PASSWORD)) as smtpd:
        server = local_sender(personas, smtpd, PASSWORD)
        response = send(as_token(tokens.owner.raw), "POST", f"/api/v1/senders/{server.pk}/test")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["summary"] == f"Connected to 127.0.0.1:{smtpd.port}, without TLS, logged in as mm."
    assert body["extensions"]["AUTH"] == "LOGIN PLAIN"
    assert (body["error_kind"], body["error_code"], body["error_step"]) == ("", None, "")
    assert_no_secret(response)
    assert AuditEvent.objects.get(event="sending.server_tested").actor_token == tokens.owner.token


def test_it_answers_the_relays_refusal_of_a_wrong_password(tokens, as_token, personas):
    with ScriptedSmtpServer(auth=("mm", PASSWORD)) as smtpd:
        server = local_sender(personas, smtpd, "wrong-one")
        response = send(as_token(tokens.owner.raw), "POST", f"/api/v1/senders/{server.pk}/test")
    body = response.json()
    assert response.status_code == 200
    assert body["ok"] is False
    assert "535 authentication refused: 5.7.8 Authentication credentials invalid" in body["summary"]
    assert (body["error_kind"], body["error_code"], body["error_step"]) == (
        "relay_broken",
        535,
        "AUTH",
    )
    assert "wrong-one" not in response.content.decode()


def test_it_refuses_tests_to_the_marketer_and_mallory(tokens, as_token, relay):
    path = f"/api/v1/senders/{relay.pk}/test"
    assert send(as_token(tokens.marketer.raw), "POST", path).status_code == 403
    assert send(as_token(tokens.mallory.raw), "POST", path).status_code == 404
    assert not AuditEvent.objects.filter(event="sending.server_tested").exists()


# -- DKIM --------------------------------------------------------------------------------------


def test_it_generates_a_key_for_the_sender_domain_by_default(tokens, as_token):
    response = send(as_token(tokens.owner.raw), "POST", "/api/v1/dkim", {})
    assert response.status_code == 201
    body = response.json()
    key = DkimKey.objects.get()
    assert body["domain"] == "acme.test"  # from news@acme.test
    assert body["selector"] == key.selector
    assert body["dns_record"] == {
        "type": "TXT",
        "name": f"{key.selector}._domainkey.acme.test",
        "value": f"v=DKIM1; k=rsa; p={key.public_key}",
    }
    assert "private_key" not in body
    assert_no_secret(response)


def test_it_answers_a_record_that_verifies_the_engines_signature(tokens, as_token):
    body = send(
        as_token(tokens.owner.raw),
        "POST",
        "/api/v1/dkim",
        {"domain": "mail.acme.test", "selector": "s2026"},
    ).json()
    record = body["dns_record"]
    stored = DkimKey.objects.get(pk=body["id"])
    message = (
        b"From: <news@mail.acme.test>\r\nTo: <ann@example.com>\r\nSubject: Hi\r\n"
        b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <2@mail.acme.test>\r\n\r\nHi.\r\n"
    )
    signed = DkimSigner(stored.domain, stored.selector, stored.private_key).sign(message)

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return record["value"].encode() if name.rstrip(".") == record["name"] else None

    assert dkimpy.verify(signed, dnsfunc=dnsfunc)
    assert not dkimpy.verify(signed.replace(b"Hi.", b"Ho."), dnsfunc=dnsfunc)


def test_it_needs_a_domain_when_the_workspace_has_no_sender(tokens, as_token):
    response = send(as_token(tokens.mallory.raw), "POST", "/api/v1/dkim", {})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "domain", "message": "enter the domain your mail is sent from"}
    ]


def test_it_refuses_a_second_key_and_a_bad_domain(tokens, as_token, key):
    owner = as_token(tokens.owner.raw)
    response = send(owner, "POST", "/api/v1/dkim", {"domain": "ACME.test"})
    assert response.status_code == 409
    assert "rotate it to replace it" in response.json()["message"]
    response = send(owner, "POST", "/api/v1/dkim", {"domain": "192.0.2.1"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "domain"


def test_it_lists_keys_to_settings_viewers_only(tokens, as_token, key):
    response = as_token(tokens.marketer.raw).get("/api/v1/dkim")
    assert response.status_code == 200
    [listed] = response.json()["keys"]
    assert listed["dns_record"]["name"] == "mm2026._domainkey.acme.test"
    assert_no_secret(response)
    assert as_token(tokens.analyst.raw).get("/api/v1/dkim").status_code == 403
    assert as_token(tokens.mallory.raw).get("/api/v1/dkim").json() == {"keys": []}


def test_it_refuses_key_generation_to_the_marketer(tokens, as_token):
    response = send(as_token(tokens.marketer.raw), "POST", "/api/v1/dkim", {"domain": "acme.test"})
    assert response.status_code == 403
    assert not DkimKey.objects.exists()


def test_it_rotates_a_key(tokens, as_token, key):
    path = f"/api/v1/dkim/{key.pk}/rotate"
    response = send(as_token(tokens.owner.raw), "POST", path, {"selector": "mm2027"})
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["selector"]) == (key.pk, "mm2027")
    assert body["public_key"] != key.public_key
    assert_no_secret(response)
    same = send(as_token(tokens.owner.raw), "POST", path, {"selector": "mm2027"})
    assert same.status_code == 422


def test_it_refuses_rotation_to_the_marketer_and_mallory(tokens, as_token, key):
    path = f"/api/v1/dkim/{key.pk}/rotate"
    assert send(as_token(tokens.marketer.raw), "POST", path, {}).status_code == 403
    assert send(as_token(tokens.mallory.raw), "POST", path, {}).status_code == 404
    assert DkimKey.objects.get(pk=key.pk).selector == "mm2026"


def test_it_deletes_a_key(tokens, as_token, key):
    path = f"/api/v1/dkim/{key.pk}"
    assert send(as_token(tokens.marketer.raw), "DELETE", path).status_code == 403
    assert send(as_token(tokens.mallory.raw), "DELETE", path).status_code == 404
    assert DkimKey.objects.exists()
    assert send(as_token(tokens.owner.raw), "DELETE", path).status_code == 204
    assert not DkimKey.objects.exists()
