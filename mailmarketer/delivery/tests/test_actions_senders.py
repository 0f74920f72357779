"""Sending settings actions: SMTP servers (values checked, the password encrypted and never
audited, kept only where it was entered for), the connection test against a real SMTP server,
and DKIM keys whose published record verifies what the engine's signer signs."""

from __future__ import annotations

import re
import socket

import dkim as dkimpy
import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils.timezone import now

from mailmarketer.accounts.actions import Conflict
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.campaigns.models import Campaign
from mailmarketer.delivery import actions, queries
from mailmarketer.delivery.actions import NameTaken
from mailmarketer.delivery.dkim import DkimSigner
from mailmarketer.delivery.models import DkimKey, SmtpServer
from mailmarketer.delivery.testing.smtpd import ScriptedSmtpServer

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple ü"


@pytest.fixture
def staff(personas):
    return Actor.for_user(personas.alice)


def make_server(workspace, staff, **fields):
    values = {"name": "Relay", "host": "smtp.example.com", **fields}
    return actions.do_create_smtp_server(workspace, actor=staff, **values)


def raw_column(model, column: str, pk: int) -> str:
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


def audit_text(event: AuditEvent) -> str:
    return f"{event.old} {event.new} {event.object_repr}"


def field_errors(excinfo) -> dict:
    return {name: " ".join(messages) for name, messages in excinfo.value.message_dict.items()}


# -- creating ----------------------------------------------------------------------------------


def test_it_creates_a_server_with_the_defaults(personas, staff):
    server = make_server(personas.acme, staff)
    server.refresh_from_db()
    assert (server.host, server.port, server.tls_mode) == ("smtp.example.com", 587, "starttls")
    assert server.verify_certificate is True
    assert (server.max_connections, server.weight, server.enabled) == (4, 1, True)
    assert (server.messages_per_second, server.hourly_cap, server.daily_cap) == (0, 0, 0)
    assert server.workspace == personas.acme


def test_it_stores_the_password_encrypted_and_audits_only_that_one_was_set(personas, staff):
    server = make_server(personas.acme, staff, username="mm", password=PASSWORD)
    raw = raw_column(SmtpServer, "password", server.pk)
    assert raw.startswith("fernet:")
    assert PASSWORD not in raw
    assert SmtpServer.objects.get(pk=server.pk).password == PASSWORD
    event = AuditEvent.objects.get(event="sending.server_created")
    assert event.new["password"] == "set"
    assert event.new["username"] == "mm"
    assert event.new["host"] == "smtp.example.com"
    assert PASSWORD not in audit_text(event)
    assert event.actor_user == personas.alice
    assert event.workspace == personas.acme


def test_it_keeps_a_password_with_spaces_at_either_end(personas, staff):
    server = make_server(personas.acme, staff, username="mm", password="  pw  ")
    assert SmtpServer.objects.get(pk=server.pk).password == "  pw  "


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("SMTP.Example.COM", "smtp.example.com"),
        ("smtp.example.com.", "smtp.example.com"),
        ("  relay  ", "relay"),
        ("localhost", "localhost"),
        ("192.168.1.20", "192.168.1.20"),
        ("[2001:DB8::1]", "2001:db8::1"),
        ("2001:db8:0:0::25", "2001:db8::25"),
        ("smtp.bücher.example", "smtp.xn--bcher-kva.example"),
    ],
)
def test_it_normalises_the_host(personas, staff, given, stored):
    assert make_server(personas.acme, staff, host=given).host == stored


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("", "enter the relay's host name or IP address"),
        ("smtp example.com", "is not a host name or an IP address"),
        ("smtp.example.com:587", "enter the port in the Port field"),
        ("-smtp.example.com", "is not a host name or an IP address"),
        ("999.1.1.1", "is not a host name or an IP address"),
        ("smtp_relay.example.com", "is not a host name or an IP address"),
        ("[not-an-address]", "is not a host name or an IP address"),
        ("a" * 64 + ".example.com", "is not a host name or an IP address"),
        ("smtp.example.com\r\nRCPT", "is not a host name or an IP address"),
    ],
)
def test_it_refuses_a_host_that_is_not_a_name_or_address(personas, staff, host, message):
    with pytest.raises(ValidationError) as excinfo:
        make_server(personas.acme, staff, host=host)
    assert message in field_errors(excinfo)["host"]
    assert not SmtpServer.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"port": 0}, "port", "port must be from 1 to 65,535, not 0"),
        ({"port": 65536}, "port", "port must be from 1 to 65,535"),
        ({"port": "25"}, "port", "port must be a whole number"),
        ({"port": True}, "port", "port must be a whole number"),
        ({"tls_mode": "ssl"}, "tls_mode", "“ssl” is not a TLS mode: choose none, starttls"),
        ({"max_connections": 0}, "max_connections", "max connections must be from 1 to 100"),
        ({"weight": 0}, "weight", "weight must be from 1 to 1,000"),
        ({"messages_per_second": -1}, "messages_per_second", "must be from 0 to 100,000"),
        ({"daily_cap": 2**31}, "daily_cap", "daily cap must be from 0 to 2,147,483,647"),
        ({"verify_certificate": "yes"}, "verify_certificate", "must be true or false"),
        ({"name": "   "}, "name", "give the server a name"),
        ({"name": "x" * 101}, "name", "longer than 100 characters"),
        ({"username": "mm\r\nMAIL"}, "username", "contains a control character"),
        ({"username": "mm", "password": "pw\r\nQUIT"}, "password", "contains a line break"),
        ({"password": "pw"}, "password", "a password needs a username"),
        ({"surprise": 1}, "surprise", "not a setting of an SMTP server"),
    ],
)
def test_it_refuses_bad_values_naming_the_field(personas, staff, fields, field, message):
    with pytest.raises(ValidationError) as excinfo:
        make_server(personas.acme, staff, **fields)
    assert message in field_errors(excinfo)[field]
    assert not SmtpServer.objects.exists()


def test_it_reports_every_bad_field_at_once(personas, staff):
    with pytest.raises(ValidationError) as excinfo:
        make_server(personas.acme, staff, host="no good", port=0, weight=0)
    assert set(field_errors(excinfo)) == {"host", "port", "weight"}


def test_it_refuses_a_name_already_used_in_the_workspace(personas, staff):
    make_server(personas.acme, staff, name="Relay")
    with pytest.raises(NameTaken, match="a server named “relay” already exists"):
        make_server(personas.acme, staff, name="relay")
    # another workspace may use it
    make_server(personas.evil, Actor.for_user(personas.mallory), name="Relay")
    assert SmtpServer.objects.filter(name__iexact="relay").count() == 2


# -- updating ----------------------------------------------------------------------------------


def test_it_audits_only_what_changed(personas, staff):
    server = make_server(personas.acme, staff, username="mm", password=PASSWORD)
    changes = {"name": "Relay", "port": 2525, "weight": 3, "enabled": True}
    actions.do_update_smtp_server(server, changes, actor=staff)
    server.refresh_from_db()
    assert (server.port, server.weight) == (2525, 3)
    assert server.password == PASSWORD  # no "password" key: kept
    event = AuditEvent.objects.get(event="sending.server_updated")
    assert event.old == {"port": 587, "weight": 1}
    assert event.new == {"port": 2525, "weight": 3}


def test_it_writes_nothing_when_nothing_changed(personas, staff):
    server = make_server(personas.acme, staff)
    actions.do_update_smtp_server(server, {"port": 587, "name": "Relay"}, actor=staff)
    assert not AuditEvent.objects.filter(event="sending.server_updated").exists()


def test_it_records_a_new_password_as_changed_never_its_value(personas, staff):
    server = make_server(personas.acme, staff, username="mm", password=PASSWORD)
    actions.do_update_smtp_server(server, {"password": "n3w s3cret"}, actor=staff)
    assert SmtpServer.objects.get(pk=server.pk).password == "n3w s3cret"
    event = AuditEvent.objects.get(event="sending.server_updated")
    assert event.new == {"password": "changed"}
    assert event.old == {}
    assert "n3w s3cret" not in audit_text(event)
    assert PASSWORD not in audit_text(event)


def test_it_records_the_same_password_typed_again_as_a_change(personas, staff):
    # Otherwise the audit log would tell whoever reads it whether a guess is right.
    server = make_server(personas.acme, staff, username="mm", password=PASSWORD)
    actions.do_update_smtp_server(server, {"password": PASSWORD}, actor=staff)
    assert AuditEvent.objects.get(event="sending.server_updated").new == {"password": "changed"}


def test_it_removes_the_password_with_an_empty_one(personas, staff):
    server = make_server(personas.acme, staff, username="mm", password=PASSWORD)
    actions.do_update_smtp_server(server, {"password": ""}, actor=staff)
    assert SmtpServer.objects.get(pk=server.pk).password == ""
    assert raw_column(SmtpServer, "password", server.pk) == ""
    assert AuditEvent.objects.get(event="sending.server_updated").new == {"password": "removed"}


def test_it_refuses_to_drop_the_username_of_a_stored_password(personas, staff):
    server = make_server(personas.acme, staff, username="mm", password=PASSWORD)
    with pytest.raises(ValidationError) as excinfo:
        actions.do_update_smtp_server(server, {"username": ""}, actor=staff)
    assert "a password needs a username" in field_errors(excinfo)["password"]
    actions.do_update_smtp_server(server, {"username": "", "password": ""}, actor=staff)
    server.refresh_from_db()
    assert (server.username, server.password) == ("", "")


@pytest.mark.parametrize(
    ("start", "changes", "reason"),
    [
        ({}, {"host": "mx.attacker.example"}, "it was entered for smtp.example.com, and the host"),
        ({}, {"tls_mode": "none"}, "TLS is now off"),
        ({}, {"verify_certificate": False}, "the check is now off"),
        ({"tls_mode": "implicit"}, {"verify_certificate": False}, "the check is now off"),
    ],
)
def test_it_asks_for_the_password_again_before_sending_it_elsewhere(
    personas, staff, start, changes, reason
):
    server = make_server(personas.acme, staff, username="mm", password=PASSWORD, **start)
    with pytest.raises(ValidationError) as excinfo:
        actions.do_update_smtp_server(server, changes, actor=staff)
    message = field_errors(excinfo)["password"]
    assert message.startswith("enter the password again")
    assert reason in message
    unchanged = SmtpServer.objects.get(pk=server.pk)
    assert (unchanged.host, unchanged.tls_mode, unchanged.verify_certificate) == (
        server.host,
        server.tls_mode,
        True,
    )
    # with the password typed again, the change goes through
    actions.do_update_smtp_server(server, {**changes, "password": PASSWORD}, actor=staff)
    saved = SmtpServer.objects.get(pk=server.pk)
    assert all(getattr(saved, name) == value for name, value in changes.items())


def test_it_lets_a_server_without_a_password_change_host_and_tls_freely(personas, staff):
    server = make_server(personas.acme, staff)
    changes = {"host": "10.0.0.5", "tls_mode": "none", "verify_certificate": False}
    actions.do_update_smtp_server(server, changes, actor=staff)
    assert SmtpServer.objects.get(pk=server.pk).host == "10.0.0.5"


def test_it_lets_a_cleartext_server_move_to_tls_without_the_password(personas, staff):
    server = make_server(
        personas.acme, staff, tls_mode="none", username="mm", password=PASSWORD, port=25
    )
    changes = {"tls_mode": "starttls", "verify_certificate": False}
    actions.do_update_smtp_server(server, changes, actor=staff)
    assert SmtpServer.objects.get(pk=server.pk).tls_mode == "starttls"


def test_it_refuses_renaming_to_a_name_in_use(personas, staff):
    make_server(personas.acme, staff, name="Primary")
    server = make_server(personas.acme, staff, name="Backup")
    with pytest.raises(NameTaken):
        actions.do_update_smtp_server(server, {"name": "PRIMARY"}, actor=staff)
    actions.do_update_smtp_server(server, {"name": "BACKUP"}, actor=staff)  # its own name
    assert SmtpServer.objects.get(pk=server.pk).name == "BACKUP"


# -- the last server of a running campaign -------------------------------------------------------


def running_campaign(workspace, status=Campaign.Status.RUNNING):
    return Campaign.objects.create(workspace=workspace, name="Autumn news", status=status)


def test_it_refuses_to_delete_the_only_server_a_running_campaign_sends_through(personas, staff):
    server = make_server(personas.acme, staff)
    running_campaign(personas.acme)
    with pytest.raises(Conflict, match=r"campaign “Autumn news” is sending.*local outbox"):
        actions.do_delete_smtp_server(server, actor=staff)
    with pytest.raises(Conflict, match="only enabled server"):
        actions.do_update_smtp_server(server, {"enabled": False}, actor=staff)
    assert SmtpServer.objects.get(pk=server.pk).enabled is True


def test_it_lets_the_last_server_go_when_no_campaign_is_sending(personas, staff):
    server = make_server(personas.acme, staff)
    running_campaign(personas.acme, status=Campaign.Status.PAUSED)
    running_campaign(personas.evil)  # another workspace's campaign is no reason
    actions.do_update_smtp_server(server, {"enabled": False}, actor=staff)
    actions.do_delete_smtp_server(server, actor=staff)
    assert not SmtpServer.objects.exists()


def test_it_lets_one_of_two_servers_go_while_a_campaign_is_sending(personas, staff):
    first = make_server(personas.acme, staff, name="First")
    make_server(personas.acme, staff, name="Second")
    running_campaign(personas.acme)
    actions.do_delete_smtp_server(first, actor=staff)
    event = AuditEvent.objects.get(event="sending.server_deleted")
    assert event.old == {"name": "First", "host": "smtp.example.com", "port": 587}
    assert list(SmtpServer.objects.values_list("name", flat=True)) == ["Second"]


# -- testing the connection --------------------------------------------------------------------


def local_server(staff, workspace, smtpd, **fields):
    return make_server(workspace, staff, host="127.0.0.1", port=smtpd.port, **fields)


def test_it_reports_a_working_login_with_the_extensions_seen(personas, staff):
    with ScriptedSmtpServer(auth=("mm", PASSWORD)) as smtpd:
        server = local_server(
            staff, personas.acme, smtpd, tls_mode="none", username="mm", password=PASSWORD
        )
        report = actions.do_test_smtp_server(server, actor=staff)
    assert report.ok, report.summary
    assert report.summary == f"Connected to 127.0.0.1:{smtpd.port}, without TLS, logged in as mm."
    assert report.extensions["AUTH"].split() == ["LOGIN", "PLAIN"]
    assert "PIPELINING" in report.extensions
    assert report.error_kind == ""
    assert smtpd.count == 0  # nothing was sent


def test_it_reports_a_wrong_password_with_the_relays_535(personas, staff):
    with ScriptedSmtpServer(auth=("mm", PASSWORD)) as smtpd:
        server = local_server(
            staff, personas.acme, smtpd, tls_mode="none", username="mm", password="wrong"
        )
        report = actions.do_test_smtp_server(server, actor=staff)
    assert not report.ok
    assert report.summary.startswith("Failed at the login (AUTH): 535 authentication refused: ")
    assert "5.7.8 Authentication credentials invalid" in report.summary
    assert "retrying will not help" in report.summary
    assert (report.error_kind, report.error_code, report.error_step) == (
        "relay_broken",
        535,
        "AUTH",
    )


def test_it_reports_an_untrusted_certificate_when_verification_is_on(personas, staff):
    with ScriptedSmtpServer(tls="starttls", auth=("mm", PASSWORD)) as smtpd:
        server = local_server(staff, personas.acme, smtpd, username="mm", password=PASSWORD)
        report = actions.do_test_smtp_server(server, actor=staff)
    assert not report.ok
    assert "TLS certificate of 127.0.0.1 not trusted: self" in report.summary
    assert report.error_kind == "relay_broken"


def test_it_connects_over_starttls_with_verification_off(personas, staff):
    with ScriptedSmtpServer(tls="starttls", auth=("mm", PASSWORD)) as smtpd:
        server = local_server(
            staff,
            personas.acme,
            smtpd,
            username="mm",
            password=PASSWORD,
            verify_certificate=False,
        )
        report = actions.do_test_smtp_server(server, actor=staff)
    assert report.ok, report.summary
    assert "switched to TLS with STARTTLS, certificate NOT verified" in report.summary
    assert "logged in as mm" in report.summary
    assert "STARTTLS" not in report.extensions  # the EHLO after STARTTLS no longer offers it


def test_it_reports_a_relay_that_does_not_offer_starttls(personas, staff):
    with ScriptedSmtpServer() as smtpd:
        server = local_server(staff, personas.acme, smtpd)
        report = actions.do_test_smtp_server(server, actor=staff)
    assert not report.ok
    assert "does not offer STARTTLS" in report.summary
    assert report.error_step == "STARTTLS"


def test_it_suggests_starttls_and_a_login_when_the_relay_offers_them(personas, staff):
    with ScriptedSmtpServer(tls="starttls", auth=("mm", PASSWORD)) as smtpd:
        server = local_server(staff, personas.acme, smtpd, tls_mode="none")
        report = actions.do_test_smtp_server(server, actor=staff)
    assert report.ok
    assert any("choose STARTTLS" in hint for hint in report.hints)


def test_it_reports_a_refused_connection_as_temporary(personas, staff):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = make_server(personas.acme, staff, host="127.0.0.1", port=port, tls_mode="none")
    report = actions.do_test_smtp_server(server, actor=staff)
    assert not report.ok
    assert report.summary.startswith(f"Failed at connecting: cannot talk to 127.0.0.1:{port}")
    assert "retrying may help" in report.summary
    assert report.error_kind == "transient"


def test_it_gives_up_on_a_silent_relay_after_the_timeout(personas, staff):
    with socket.socket() as silent:  # accepts connections (the backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        server = make_server(personas.acme, staff, host="127.0.0.1", port=port, tls_mode="none")
        report = actions.do_test_smtp_server(server, actor=staff, timeout=0.3)
    assert not report.ok
    assert f"127.0.0.1:{port} did not answer within 0.3 s" in report.summary
    assert 0.3 <= report.seconds < 5


def test_it_audits_the_test_and_its_outcome_without_secrets(personas, staff):
    with ScriptedSmtpServer(auth=("mm", PASSWORD)) as smtpd:
        server = local_server(
            staff, personas.acme, smtpd, tls_mode="none", username="mm", password="wrong pw"
        )
        report = actions.do_test_smtp_server(server, actor=staff)
    event = AuditEvent.objects.get(event="sending.server_tested")
    assert event.new == {"ok": False, "result": report.summary}
    assert event.object_id == str(server.pk)
    assert "wrong pw" not in audit_text(event)


# -- DKIM --------------------------------------------------------------------------------------

MESSAGE = (
    b"From: Acme <news@acme.test>\r\n"
    b"To: ann@example.com\r\n"
    b"Subject: Autumn news\r\n"
    b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n"
    b"Message-ID: <1.abc@acme.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello Ann,\r\n\r\nthe leaves are falling.\r\n"
)


def published(*keys):
    """A resolver that knows the TXT records the settings page tells people to publish."""
    records = dict(queries.dns_record_for(key) for key in keys)

    def dnsfunc(name, timeout=5):
        name = name.decode("ascii") if isinstance(name, bytes) else name
        value = records.get(name.rstrip(".").lower())
        return value.encode("ascii") if value is not None else None

    return dnsfunc


def sign_with_stored_key(key: DkimKey) -> bytes:
    stored = DkimKey.objects.get(pk=key.pk)  # the private key as read back from the database
    return DkimSigner(stored.domain, stored.selector, stored.private_key).sign(MESSAGE)


def test_it_generates_a_key_whose_record_verifies_what_the_engine_signs(personas, staff):
    key = actions.do_generate_dkim_key(
        personas.acme, domain="acme.test", selector="mm2026", actor=staff
    )
    name, value = queries.dns_record_for(key)
    assert name == "mm2026._domainkey.acme.test"
    assert value == f"v=DKIM1; k=rsa; p={key.public_key}"
    signed = sign_with_stored_key(key)
    assert dkimpy.verify(signed, dnsfunc=published(key))
    tampered = signed.replace(b"leaves are falling", b"leaves are rising")
    assert not dkimpy.verify(tampered, dnsfunc=published(key))


def test_it_gives_each_key_its_own_pair(personas, staff):
    first = actions.do_generate_dkim_key(personas.acme, domain="acme.test", actor=staff)
    other = actions.do_generate_dkim_key(
        personas.evil, domain="acme.test", actor=Actor.for_user(personas.mallory)
    )
    assert first.public_key != other.public_key
    # mallory's record does not vouch for acme's signature
    impostor = published(other)
    assert not dkimpy.verify(sign_with_stored_key(first), dnsfunc=impostor)


def test_it_encrypts_the_private_key_and_never_audits_it(personas, staff):
    key = actions.do_generate_dkim_key(personas.acme, domain="acme.test", actor=staff)
    private_pem = DkimKey.objects.get(pk=key.pk).private_key
    assert private_pem.startswith("-----BEGIN PRIVATE KEY-----")
    raw = raw_column(DkimKey, "private_key", key.pk)
    assert raw.startswith("fernet:")
    assert "PRIVATE KEY" not in raw
    assert raw_column(DkimKey, "public_key", key.pk) == key.public_key  # public: in the clear
    event = AuditEvent.objects.get(event="sending.dkim_generated")
    assert event.new == {"domain": "acme.test", "selector": key.selector, "bits": 2048}
    body = private_pem.splitlines()[1]
    assert body not in audit_text(event)


def test_it_picks_a_dated_selector_by_default(personas, staff):
    key = actions.do_generate_dkim_key(personas.acme, domain="acme.test", actor=staff)
    assert key.selector == f"mm{now().year}"


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("Acme.TEST", "acme.test"),
        ("mail.acme.test.", "mail.acme.test"),
        (" acme.test ", "acme.test"),
        ("bücher.example", "xn--bcher-kva.example"),
    ],
)
def test_it_normalises_the_domain(personas, staff, given, stored):
    key = actions.do_generate_dkim_key(personas.acme, domain=given, actor=staff)
    assert key.domain == stored
    assert queries.dns_record_for(key)[0] == f"{key.selector}._domainkey.{stored}"


@pytest.mark.parametrize(
    ("domain", "message"),
    [
        ("", "enter the domain your mail is sent from"),
        ("news@acme.test", "enter the domain only (the part after @)"),
        ("203.0.113.9", "a DKIM domain is a domain name, not an IP address"),
        ("localhost", "is not a domain name"),
        ("acme test", "is not a domain name"),
        ("-acme.test", "is not a domain name"),
        ("acme.123", "is not a domain name"),
        ("acme.test\r\nx", "is not a domain name"),
    ],
)
def test_it_refuses_a_domain_that_is_not_one(personas, staff, domain, message):
    with pytest.raises(ValidationError) as excinfo:
        actions.do_generate_dkim_key(personas.acme, domain=domain, actor=staff)
    assert message in field_errors(excinfo)["domain"]
    assert not DkimKey.objects.exists()


@pytest.mark.parametrize("selector", ["mm 2026", "-mm", "mm-", "mm.2026", "m" * 64, "mm_2026"])
def test_it_refuses_a_selector_that_is_not_one(personas, staff, selector):
    with pytest.raises(ValidationError) as excinfo:
        actions.do_generate_dkim_key(
            personas.acme, domain="acme.test", selector=selector, actor=staff
        )
    assert "use letters, digits and hyphens" in field_errors(excinfo)["selector"]


def test_it_refuses_a_second_key_for_a_domain(personas, staff):
    actions.do_generate_dkim_key(personas.acme, domain="acme.test", actor=staff)
    with pytest.raises(Conflict, match=r"acme\.test already has a DKIM key: rotate it"):
        actions.do_generate_dkim_key(personas.acme, domain="ACME.test", actor=staff)
    assert DkimKey.objects.count() == 1


def test_it_rotates_to_a_new_selector_and_key_in_place(personas, staff):
    key = actions.do_generate_dkim_key(
        personas.acme, domain="acme.test", selector="mm2025", actor=staff
    )
    old_public = key.public_key
    rotated = actions.do_rotate_dkim_key(key, selector="MM2026", actor=staff)
    assert rotated.pk == key.pk
    assert rotated.selector == "mm2026"
    assert rotated.public_key != old_public
    assert dkimpy.verify(sign_with_stored_key(rotated), dnsfunc=published(rotated))
    event = AuditEvent.objects.get(event="sending.dkim_rotated")
    assert event.old == {"selector": "mm2025"}
    assert event.new == {"domain": "acme.test", "selector": "mm2026", "bits": 2048}


def test_it_refuses_to_rotate_to_the_same_selector(personas, staff):
    key = actions.do_generate_dkim_key(
        personas.acme, domain="acme.test", selector="mm2026", actor=staff
    )
    with pytest.raises(ValidationError) as excinfo:
        actions.do_rotate_dkim_key(key, selector="mm2026", actor=staff)
    assert "other than the current one (mm2026)" in field_errors(excinfo)["selector"]
    assert DkimKey.objects.get(pk=key.pk).public_key == key.public_key


def test_it_rotates_to_a_different_default_selector(personas, staff):
    key = actions.do_generate_dkim_key(personas.acme, domain="acme.test", actor=staff)
    assert key.selector == f"mm{now().year}"
    rotated = actions.do_rotate_dkim_key(key, actor=staff)
    assert re.fullmatch(r"mm\d{8}", rotated.selector), rotated.selector


def test_it_deletes_a_key_and_audits_it(personas, staff):
    key = actions.do_generate_dkim_key(personas.acme, domain="acme.test", actor=staff)
    actions.do_delete_dkim_key(key, actor=staff)
    assert not DkimKey.objects.exists()
    event = AuditEvent.objects.get(event="sending.dkim_deleted")
    assert event.old == {"domain": "acme.test", "selector": key.selector}
