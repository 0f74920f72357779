"""The sending settings pages: every route allowed, forbidden and invisible across workspaces;
the stored password never in a page; the connection test against a real SMTP server; DKIM
records shown to copy."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.campaigns.models import Campaign
from mailmarketer.delivery import actions, queries
from mailmarketer.delivery.models import DkimKey, SmtpServer
from mailmarketer.delivery.testing.smtpd import ScriptedSmtpServer

pytestmark = pytest.mark.django_db

PASSWORD = "s3cret-relay-pässword"
OVERVIEW = "/app/acme/settings/sending/"


@pytest.fixture
def staff(personas):
    return Actor.for_user(personas.alice)


@pytest.fixture
def relay(personas, staff):
    return actions.do_create_smtp_server(
        personas.acme,
        actor=staff,
        name="Office relay",
        host="smtp.acme.test",
        username="mm",
        password=PASSWORD,
        hourly_cap=5000,
    )


@pytest.fixture
def key(personas, staff):
    return actions.do_generate_dkim_key(
        personas.acme, domain="acme.test", selector="mm2026", actor=staff
    )


def url(name, ws="acme", **kwargs):
    return reverse(name, kwargs={"ws": ws, **kwargs})


def form_data(**changes):
    data = {
        "name": "Office relay",
        "host": "smtp.acme.test",
        "port": "587",
        "tls_mode": "starttls",
        "verify_certificate": "on",
        "username": "mm",
        "password": "",
        "max_connections": "4",
        "messages_per_second": "0",
        "hourly_cap": "5000",
        "daily_cap": "0",
        "weight": "1",
        "enabled": "on",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def html_of(response) -> str:
    return response.content.decode()


# -- who may open what -------------------------------------------------------------------------

# (method, route name, object: "server" | "key" | None, POST data, status for alice)
MANAGE_ROUTES = [
    ("get", "sending-server-create", None, None, 200),
    ("post", "sending-server-create", None, form_data(name="Backup"), 302),
    ("get", "sending-server-edit", "server", None, 200),
    ("post", "sending-server-edit", "server", form_data(port="2525"), 302),
    ("get", "sending-server-delete", "server", None, 200),
    ("post", "sending-server-delete", "server", {}, 302),
    ("post", "sending-server-test", "server", {}, 200),
    (
        "post",
        "sending-dkim-create",
        None,
        {"dkim-domain": "mail.acme.test", "dkim-selector": "s1"},
        302,
    ),
    ("get", "sending-dkim-rotate", "key", None, 200),
    ("post", "sending-dkim-rotate", "key", {"selector": "mm2027"}, 302),
    ("get", "sending-dkim-delete", "key", None, 200),
    ("post", "sending-dkim-delete", "key", {}, 302),
]
ROUTE_IDS = [f"{m} {name}" for m, name, *_ in MANAGE_ROUTES]


def route_url(name, obj, relay, key, ws="acme"):
    if obj == "server":
        return url(name, ws, server_id=relay.pk)
    if obj == "key":
        return url(name, ws, key_id=key.pk)
    return url(name, ws)


def call(client, method, path, data):
    return client.post(path, data or {}) if method == "post" else client.get(path)


def snapshot():
    """Everything a refused request must leave as it was."""
    return (
        list(SmtpServer.objects.order_by("pk").values_list("name", "host", "port", "password")),
        list(DkimKey.objects.order_by("pk").values_list("domain", "selector", "public_key")),
        AuditEvent.objects.filter(event__startswith="sending.").count(),
    )


def test_it_shows_the_overview_to_settings_viewers(alice_client, bob_client, carol_client, relay):
    assert alice_client.get(OVERVIEW).status_code == 200
    assert bob_client.get(OVERVIEW).status_code == 200  # marketer: settings.view
    response = carol_client.get(OVERVIEW)  # analyst: no settings.view
    assert response.status_code == 403
    assert b"settings.view" in response.content
    assert b"smtp.acme.test" not in response.content


def test_it_hides_acmes_overview_from_mallory(mallory_client, relay, key):
    assert mallory_client.get(OVERVIEW).status_code == 404
    own = mallory_client.get(url("sending", "evil"))
    assert own.status_code == 200
    assert b"smtp.acme.test" not in own.content
    assert key.public_key.encode() not in own.content


def test_it_sends_anonymous_visitors_to_sign_in(client):
    response = client.get(OVERVIEW)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.parametrize(("method", "name", "obj", "data", "status"), MANAGE_ROUTES, ids=ROUTE_IDS)
def test_it_lets_a_settings_manager_use_each_route(
    alice_client, relay, key, method, name, obj, data, status
):
    if name == "sending-server-test":
        # A port nobody listens on answers at once; a name to resolve might not.
        SmtpServer.objects.filter(pk=relay.pk).update(host="127.0.0.1", port=9)
    response = call(alice_client, method, route_url(name, obj, relay, key), data)
    assert response.status_code == status, html_of(response)[:2000]
    if method == "post":
        assert AuditEvent.objects.filter(event__startswith="sending.").count() > 2


@pytest.mark.parametrize(("method", "name", "obj", "data", "status"), MANAGE_ROUTES, ids=ROUTE_IDS)
def test_it_forbids_each_change_to_roles_without_settings_manage(
    bob_client, carol_client, relay, key, method, name, obj, data, status
):
    before = snapshot()
    for client in (bob_client, carol_client):
        response = call(client, method, route_url(name, obj, relay, key), data)
        assert response.status_code == 403
        assert b"settings.manage" in response.content
    assert snapshot() == before


@pytest.mark.parametrize(("method", "name", "obj", "data", "status"), MANAGE_ROUTES, ids=ROUTE_IDS)
def test_it_answers_mallory_not_found_for_each_route(
    mallory_client, relay, key, method, name, obj, data, status
):
    before = snapshot()
    # acme's URL: not a member
    assert call(mallory_client, method, route_url(name, obj, relay, key), data).status_code == 404
    if obj is not None:
        # her own workspace's URL with acme's object id
        response = call(mallory_client, method, route_url(name, obj, relay, key, "evil"), data)
        assert response.status_code == 404
    assert snapshot() == before


# -- the overview ------------------------------------------------------------------------------


def test_it_says_campaigns_go_to_the_outbox_without_a_server(alice_client, staff, personas):
    html = html_of(alice_client.get(OVERVIEW))
    assert 'id="outbox-note"' in html
    assert "No server is configured, so campaigns go to the" in html
    assert 'href="/app/acme/outbox/"' in html
    server = actions.do_create_smtp_server(personas.acme, actor=staff, name="R", host="r.test")
    assert 'id="outbox-note"' not in html_of(alice_client.get(OVERVIEW))
    actions.do_update_smtp_server(server, {"enabled": False}, actor=staff)
    assert "Every server is disabled, so campaigns go to the" in html_of(alice_client.get(OVERVIEW))


def test_it_lists_each_server_with_its_settings(alice_client, relay):
    html = html_of(alice_client.get(OVERVIEW))
    row = re.search(rf'<tr id="server-{relay.pk}">.*?</tr>', html, re.S).group(0)
    assert '<th scope="row">Office relay</th>' in row
    assert "<code>smtp.acme.test:587</code>" in row
    assert "STARTTLS" in row
    assert "certificate verified" in row
    assert "mm<br>" in row
    assert "password •••• set" in row
    assert '<td class="num">5000</td>' in row  # hourly cap
    assert "no limit" in row  # per second
    assert "Enabled" in row
    assert "Test connection" in row
    assert PASSWORD not in html


def test_it_shows_bob_the_settings_without_any_control(bob_client, relay, key):
    html = html_of(bob_client.get(OVERVIEW))
    assert "smtp.acme.test:587" in html
    assert "mm2026._domainkey.acme.test" in html  # the record to publish is no secret
    assert "Add a server" not in html
    assert "Test connection" not in html
    assert "Generate key" not in html
    assert "/servers/new/" not in html
    assert "/rotate/" not in html
    assert "needs the <code>settings.manage</code> permission" in html


def test_it_links_the_sending_page_from_the_workspace_settings_pages(
    alice_client, carol_client, bob_client
):
    link = '<a href="/app/acme/settings/sending/"'
    assert link in html_of(alice_client.get("/app/acme/settings/"))
    assert link in html_of(bob_client.get("/app/acme/team/"))
    assert link not in html_of(carol_client.get("/app/acme/team/"))  # no settings.view
    current = f'{link} aria-current="page">Sending</a>'
    assert current in html_of(alice_client.get(OVERVIEW))


# -- adding and editing a server ---------------------------------------------------------------


def test_it_adds_a_server_from_the_form(alice_client, personas):
    data = form_data(
        name="Postmark",
        host="SMTP.Postmark.example",
        port="2525",
        password="pm-token",
        max_connections="8",
        messages_per_second="50",
        hourly_cap="0",
        daily_cap="100000",
        weight="3",
        enabled=None,
    )
    response = alice_client.post(url("sending-server-create"), data)
    server = SmtpServer.objects.get(name="Postmark")
    assert response.status_code == 302
    assert response["Location"] == f"{OVERVIEW}#server-{server.pk}"
    assert server.host == "smtp.postmark.example"
    assert (server.port, server.username, server.password) == (2525, "mm", "pm-token")
    assert (server.max_connections, server.messages_per_second, server.daily_cap) == (8, 50, 100000)
    assert (server.weight, server.enabled, server.verify_certificate) == (3, False, True)
    assert server.workspace == personas.acme
    followed = html_of(alice_client.get(OVERVIEW))
    assert "The server “Postmark” was added." in followed


def test_it_shows_the_actions_refusal_on_the_field(alice_client):
    response = alice_client.post(url("sending-server-create"), form_data(host="smtp example.com"))
    assert response.status_code == 400
    html = html_of(response)
    assert "“smtp example.com” is not a host name or an IP address" in html
    assert re.search(r'<input[^>]*name="host"[^>]*aria-invalid="true"', html)
    assert 'id="id_host_error"' in html
    assert not SmtpServer.objects.exists()


def test_it_shows_a_taken_name_on_the_name_field(alice_client, relay):
    response = alice_client.post(url("sending-server-create"), form_data(name="office RELAY"))
    assert response.status_code == 409
    assert 'id="id_name_error"' in html_of(response)
    assert "a server named “office RELAY” already exists" in html_of(response)


def test_it_warns_after_saving_a_server_without_tls_to_a_public_host(alice_client):
    response = alice_client.post(
        url("sending-server-create"), form_data(tls_mode="none", host="smtp.acme.test"), follow=True
    )
    html = html_of(response)
    assert "Office relay: no TLS to smtp.acme.test." in html
    assert "the password and every message travel in clear" in html


def test_it_does_not_warn_about_cleartext_to_this_machine(alice_client):
    response = alice_client.post(
        url("sending-server-create"), form_data(tls_mode="none", host="127.0.0.1"), follow=True
    )
    assert "no TLS to" not in html_of(response)


def test_it_warns_when_certificate_verification_is_off(alice_client):
    response = alice_client.post(
        url("sending-server-create"), form_data(verify_certificate=None), follow=True
    )
    html = html_of(response)
    assert SmtpServer.objects.get().verify_certificate is False
    assert "Office relay: certificate verification is off." in html
    assert '<span class="tag tag-warn">not verified</span>' in html


def test_it_explains_the_tls_choices_on_the_form(alice_client):
    html = html_of(alice_client.get(url("sending-server-create")))
    assert "use it only for a relay on this machine or on a private network" in html
    assert re.search(r'<input type="checkbox" name="verify_certificate"[^>]*checked', html)
    assert '<option value="starttls" selected>' in html


def test_it_never_puts_the_stored_password_in_the_edit_page(alice_client, relay):
    response = alice_client.get(url("sending-server-edit", server_id=relay.pk))
    html = html_of(response)
    assert response.status_code == 200
    assert PASSWORD not in html
    password_input = re.search(r'<input type="password"[^>]*>', html).group(0)
    assert "value=" not in password_input
    assert 'autocomplete="new-password"' in password_input
    assert "A password is set." in html
    assert "Leave this empty to keep it" in html
    assert 'name="clear_password"' in html
    assert 'value="smtp.acme.test"' in html  # the other values are filled in


def test_it_does_not_echo_a_typed_password_when_the_form_is_refused(alice_client, relay):
    response = alice_client.post(
        url("sending-server-edit", server_id=relay.pk),
        form_data(host="bad host", password="typed-new-secret"),
    )
    assert response.status_code == 400
    assert "typed-new-secret" not in html_of(response)
    assert PASSWORD not in html_of(response)


def test_it_keeps_a_typed_password_out_of_error_reports(alice_client, monkeypatch):
    from django.core.signals import got_request_exception
    from django.views.debug import SafeExceptionReporterFilter

    reported = {}

    def crash(*args, **kwargs):
        raise RuntimeError("the database went away")

    def report(sender, request, **kwargs):
        reported.update(SafeExceptionReporterFilter().get_post_parameters(request).dict())

    monkeypatch.setattr(actions, "do_create_smtp_server", crash)
    got_request_exception.connect(report)
    try:
        with pytest.raises(RuntimeError):
            alice_client.post(url("sending-server-create"), form_data(password="typed-secret"))
    finally:
        got_request_exception.disconnect(report)
    assert reported["host"] == "smtp.acme.test"
    assert reported["password"] != "typed-secret"
    assert set(reported["password"]) == {"*"}


def test_it_keeps_the_password_when_the_field_is_left_empty(alice_client, relay):
    response = alice_client.post(
        url("sending-server-edit", server_id=relay.pk), form_data(port="2525")
    )
    assert response.status_code == 302
    saved = SmtpServer.objects.get(pk=relay.pk)
    assert (saved.port, saved.password) == (2525, PASSWORD)
    event = AuditEvent.objects.get(event="sending.server_updated")
    assert event.new == {"port": 2525}


def test_it_replaces_the_password_with_a_typed_one(alice_client, relay):
    alice_client.post(url("sending-server-edit", server_id=relay.pk), form_data(password="n3w"))
    assert SmtpServer.objects.get(pk=relay.pk).password == "n3w"
    assert AuditEvent.objects.get(event="sending.server_updated").new == {"password": "changed"}


def test_it_removes_the_password_with_the_checkbox(alice_client, relay):
    response = alice_client.post(
        url("sending-server-edit", server_id=relay.pk), form_data(clear_password="on")
    )
    assert response.status_code == 302
    assert SmtpServer.objects.get(pk=relay.pk).password == ""
    html = html_of(alice_client.get(url("sending-server-edit", server_id=relay.pk)))
    assert "A password is set." not in html
    assert 'name="clear_password"' not in html


def test_it_refuses_a_new_password_and_its_removal_together(alice_client, relay):
    response = alice_client.post(
        url("sending-server-edit", server_id=relay.pk),
        form_data(password="n3w", clear_password="on"),
    )
    assert response.status_code == 400
    assert "Either type a new password or remove the stored one, not both." in html_of(response)
    assert SmtpServer.objects.get(pk=relay.pk).password == PASSWORD


def test_it_asks_for_the_password_again_when_the_host_changes(alice_client, relay):
    edit = url("sending-server-edit", server_id=relay.pk)
    response = alice_client.post(edit, form_data(host="mx.elsewhere.example"))
    assert response.status_code == 400
    html = html_of(response)
    assert 'id="id_password_error"' in html
    assert "enter the password again: the stored one stays where it was entered for" in html
    assert SmtpServer.objects.get(pk=relay.pk).host == "smtp.acme.test"
    response = alice_client.post(edit, form_data(host="mx.elsewhere.example", password=PASSWORD))
    assert response.status_code == 302
    assert SmtpServer.objects.get(pk=relay.pk).host == "mx.elsewhere.example"


def test_it_refuses_to_disable_the_relay_a_running_campaign_needs(alice_client, relay, personas):
    Campaign.objects.create(workspace=personas.acme, name="Autumn news", status="running")
    response = alice_client.post(
        url("sending-server-edit", server_id=relay.pk), form_data(enabled=None)
    )
    assert response.status_code == 409
    assert "campaign “Autumn news” is sending" in html_of(response)
    assert SmtpServer.objects.get(pk=relay.pk).enabled is True
    response = alice_client.post(url("sending-server-delete", server_id=relay.pk))
    assert response.status_code == 409
    assert "Pause the campaign first, or add another server." in html_of(response)
    assert SmtpServer.objects.filter(pk=relay.pk).exists()


def test_it_deletes_a_server_after_confirmation(alice_client, relay):
    confirm = alice_client.get(url("sending-server-delete", server_id=relay.pk))
    assert "Delete the server “Office relay”?" in html_of(confirm)
    assert PASSWORD not in html_of(confirm)
    assert SmtpServer.objects.exists()  # a GET changes nothing
    response = alice_client.post(url("sending-server-delete", server_id=relay.pk), follow=True)
    assert not SmtpServer.objects.exists()
    assert "The server “Office relay” was deleted." in html_of(response)


# -- testing the connection --------------------------------------------------------------------


def local_relay(personas, staff, smtpd, **fields):
    return actions.do_create_smtp_server(
        personas.acme,
        actor=staff,
        name="Local",
        host="127.0.0.1",
        port=smtpd.port,
        tls_mode="none",
        **fields,
    )


def test_it_shows_a_working_connection_with_the_extensions_seen(alice_client, personas, staff):
    with ScriptedSmtpServer(auth=("mm", PASSWORD)) as smtpd:
        server = local_relay(personas, staff, smtpd, username="mm", password=PASSWORD)
        response = alice_client.post(url("sending-server-test", server_id=server.pk))
    html = html_of(response)
    assert response.status_code == 200
    assert "Connection test of “Local”: it works" in html
    assert f"Connected to 127.0.0.1:{smtpd.port}, without TLS, logged in as mm." in html
    assert "<li><code>AUTH LOGIN PLAIN</code></li>" in html
    assert "<li><code>PIPELINING</code></li>" in html
    assert PASSWORD not in html
    event = AuditEvent.objects.get(event="sending.server_tested")
    assert event.new["ok"] is True
    assert event.actor_user == personas.alice


def test_it_shows_what_the_relay_said_when_the_login_is_refused(alice_client, personas, staff):
    with ScriptedSmtpServer(auth=("mm", PASSWORD)) as smtpd:
        server = local_relay(personas, staff, smtpd, username="mm", password="not-it")
        response = alice_client.post(url("sending-server-test", server_id=server.pk))
    html = html_of(response)
    assert "Connection test of “Local”: it failed" in html
    assert "Failed at the login (AUTH): 535 authentication refused" in html
    assert "5.7.8 Authentication credentials invalid" in html
    assert "not-it" not in html
    assert AuditEvent.objects.get(event="sending.server_tested").new["ok"] is False


def test_it_shows_the_certificate_problem_of_a_self_signed_relay(alice_client, personas, staff):
    with ScriptedSmtpServer(tls="starttls") as smtpd:
        server = local_relay(personas, staff, smtpd)
        actions.do_update_smtp_server(server, {"tls_mode": "starttls"}, actor=staff)
        failed = html_of(alice_client.post(url("sending-server-test", server_id=server.pk)))
        actions.do_update_smtp_server(server, {"verify_certificate": False}, actor=staff)
        worked = html_of(alice_client.post(url("sending-server-test", server_id=server.pk)))
    assert "TLS certificate of 127.0.0.1 not trusted" in failed
    assert "it failed" in failed
    assert "switched to TLS with STARTTLS, certificate NOT verified (verification is off)" in worked
    assert "it works" in worked


# -- DKIM --------------------------------------------------------------------------------------


def test_it_suggests_a_key_for_the_sender_domain(alice_client):
    html = html_of(alice_client.get(OVERVIEW))
    assert "Your sender address's domain, <strong>acme.test</strong>, has no DKIM key" in html
    assert re.search(r'<input[^>]*name="dkim-domain"[^>]*value="acme.test"', html)
    assert re.search(r'<input[^>]*name="dkim-selector"[^>]*value="mm\d{4}"', html)


def test_it_generates_a_key_and_shows_the_record_to_copy(alice_client):
    response = alice_client.post(
        url("sending-dkim-create"), {"dkim-domain": "Acme.TEST", "dkim-selector": "mm2026"}
    )
    key = DkimKey.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"{OVERVIEW}#dkim-{key.pk}"
    html = html_of(alice_client.get(OVERVIEW))
    name, value = queries.dns_record_for(key)
    assert name == "mm2026._domainkey.acme.test"
    assert f'<code id="dkim-name-{key.pk}" class="secret">{name}</code>' in html
    assert f'<code id="dkim-value-{key.pk}" class="secret">{value}</code>' in html
    assert f'data-copy="dkim-name-{key.pk}"' in html
    assert f'data-copy="dkim-value-{key.pk}"' in html
    assert f"dig +short TXT {name}" in html
    assert "has no DKIM key" not in html
    private_body = DkimKey.objects.get().private_key.splitlines()[1]
    assert private_body not in html
    assert "PRIVATE KEY" not in html


def test_it_shows_dkim_errors_on_the_form(alice_client, key):
    response = alice_client.post(
        url("sending-dkim-create"), {"dkim-domain": "news@acme.test", "dkim-selector": "mm2026"}
    )
    assert response.status_code == 400
    assert "enter the domain only (the part after @)" in html_of(response)
    assert 'id="id_dkim-domain_error"' in html_of(response)
    response = alice_client.post(
        url("sending-dkim-create"), {"dkim-domain": "acme.test", "dkim-selector": "mm2030"}
    )
    assert response.status_code == 409
    assert "acme.test already has a DKIM key: rotate it to replace it" in html_of(response)
    assert DkimKey.objects.count() == 1


def test_it_rotates_a_key_after_warning_about_the_old_record(alice_client, key):
    rotate = url("sending-dkim-rotate", key_id=key.pk)
    page = html_of(alice_client.get(rotate))
    assert "Keep the old record <code>mm2026._domainkey.acme.test</code> in DNS" in page
    assert re.search(r'name="selector" value="mm\d{8}"', page)
    refused = alice_client.post(rotate, {"selector": "mm2026"})
    assert refused.status_code == 400
    assert "choose a selector other than the current one (mm2026)" in html_of(refused)
    response = alice_client.post(rotate, {"selector": "mm2027"}, follow=True)
    rotated = DkimKey.objects.get(pk=key.pk)
    assert rotated.selector == "mm2027"
    assert rotated.public_key != key.public_key
    html = html_of(response)
    assert "keep the old record mm2026._domainkey.acme.test in DNS" in html
    assert "mm2027._domainkey.acme.test" in html


def test_it_deletes_a_key_after_confirmation(alice_client, key):
    confirm = html_of(alice_client.get(url("sending-dkim-delete", key_id=key.pk)))
    assert "Delete the DKIM key of acme.test?" in confirm
    assert DkimKey.objects.exists()
    response = alice_client.post(url("sending-dkim-delete", key_id=key.pk), follow=True)
    assert not DkimKey.objects.exists()
    assert "The DKIM key of acme.test was deleted" in html_of(response)


# -- in a browser ------------------------------------------------------------------------------


@pytest.mark.browser
def test_it_works_in_a_browser_and_copies_the_dns_record(
    live_server, transactional_db, monkeypatch
):
    """No console errors (a CSP refusal is one), the forms by their labels, and the copy
    button putting the record's value on the clipboard (web/static/web/app.js)."""
    from mailmarketer.accounts.models import Membership, User, Workspace
    from mailmarketer.accounts.permissions import Role
    from mailmarketer.testing import chromium_page

    # Playwright's sync API runs an event loop in this thread (see test_browser_login.py).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    workspace = Workspace.objects.create(name="Acme", slug="acme", sender_email="news@acme.test")
    olga = User.objects.create_user(email="olga@acme.test", name="Olga", password=PASSWORD)
    Membership.objects.create(workspace=workspace, user=olga, role=Role.OWNER)
    base = live_server.url

    with chromium_page() as (page, errors):
        page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        page.goto(f"{base}/login/")
        page.get_by_label("Email address").fill("olga@acme.test")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/app/acme/")
        page.goto(f"{base}/app/acme/settings/")
        subnav = page.get_by_role("navigation", name="Workspace administration")
        subnav.get_by_role("link", name="Sending").click()
        page.wait_for_url(f"{base}{OVERVIEW}")
        assert page.locator("#outbox-note").is_visible()

        page.get_by_role("link", name="Add a server").click()
        page.get_by_label("Name", exact=True).fill("Office relay")
        page.get_by_label("Host", exact=True).fill("127.0.0.1")
        page.get_by_label("Port", exact=True).fill("2525")
        page.get_by_label("Encryption (TLS)").select_option("none")
        page.get_by_role("button", name="Add server").click()
        page.wait_for_url(f"{base}{OVERVIEW}#server-*")
        assert page.get_by_role("rowheader", name="Office relay").is_visible()
        assert page.locator("#outbox-note").count() == 0

        page.get_by_role("button", name="Generate key").click()
        page.wait_for_url(f"{base}{OVERVIEW}#dkim-*")
        value = page.locator("code[id^=dkim-value-]")
        record = value.inner_text()
        assert record.startswith("v=DKIM1; k=rsa; p=")
        page.get_by_role("button", name="Copy value of the record for acme.test").click()
        copy = page.locator("button[data-copy^=dkim-value-]")  # its name is now "Copied"
        assert copy.inner_text().startswith("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == record
        assert errors == []

    key = DkimKey.objects.get()
    assert record == f"v=DKIM1; k=rsa; p={key.public_key}"
