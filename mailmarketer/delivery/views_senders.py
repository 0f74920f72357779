"""The sending settings pages, under /app/<ws>/settings/sending/: SMTP relays (list, add, edit,
delete, test the connection) and DKIM keys (generate, rotate, delete, the DNS record to publish).

Each view names its one permission in its decorator: the overview needs settings.view, every
form and change settings.manage (confirmation pages are the GET of the same URL). Writes go
through actions.py, reads through queries.py; a refusal is shown on the page with a 4xx status.
Objects named in a URL are looked up inside request.workspace only, so another workspace's id
is a 404. No stored password or private key is ever put into a page.
"""

from __future__ import annotations

import ipaddress

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import workspace_view
from mailmarketer.accounts.actions import ActionError, Conflict
from mailmarketer.accounts.actors import Actor

from . import actions, queries
from .actions import NameTaken
from .forms import TLS_NONE_WARNING, VERIFY_OFF_WARNING, DkimKeyForm, DkimRotateForm, SmtpServerForm
from .models import SmtpServer

TlsMode = SmtpServer.TlsMode


def _status_for(exc: ActionError) -> int:
    if isinstance(exc, Conflict):
        return 409
    return 403 if exc.code == "forbidden" else 400


def _add_validation_error(form, exc: ValidationError) -> None:
    """An action's field errors onto the form fields of the same name."""
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc)


def is_local_host(host: str) -> bool:
    """This machine or a private network, as far as the host's text tells (names are not
    resolved: "relay.internal" may well be private, and is warned about anyway)."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def server_warnings(server) -> list[str]:
    """What is risky about a relay's settings, for the list and the messages after saving."""
    warnings = []
    if server.tls_mode == TlsMode.NONE and not is_local_host(server.host):
        warnings.append(f"{server.name}: no TLS to {server.host}. {TLS_NONE_WARNING}")
    if server.tls_mode != TlsMode.NONE and not server.verify_certificate:
        warnings.append(f"{server.name}: certificate verification is off. {VERIFY_OFF_WARNING}")
    return warnings


def _dkim_rows(keys) -> list[dict]:
    rows = []
    for key in keys:
        name, value = queries.dns_record_for(key)
        rows.append({"key": key, "record_name": name, "record_value": value})
    return rows


def _sending_page(request, *, dkim_form=None, report=None, tested=None, status=200, error=""):
    workspace = request.workspace
    can_manage = request.membership.has(p.SETTINGS_MANAGE)
    servers = queries.smtp_servers_for(workspace)
    keys = queries.dkim_keys_for(workspace)
    sender_domain = queries.sender_domain(workspace)
    if can_manage and dkim_form is None:
        dkim_form = DkimKeyForm(
            initial={"domain": sender_domain, "selector": actions.default_selector()}
        )
    context = {
        "subnav_current": "sending",
        "can_manage": can_manage,
        "servers": [{"server": s, "warnings": server_warnings(s)} for s in servers],
        "uses_outbox": not any(s.enabled for s in servers),
        "has_disabled_only": bool(servers) and not any(s.enabled for s in servers),
        "dkim_rows": _dkim_rows(keys),
        "sender_domain": sender_domain,
        "sender_domain_unsigned": bool(sender_domain)
        and all(k.domain != sender_domain for k in keys),
        "dkim_form": dkim_form if can_manage else None,
        "report": report,
        "report_extensions": sorted(report.extensions.items()) if report else [],
        "tested": tested,
        "error": error,
    }
    return render(request, "delivery/sending.html", context, status=status)


def _server_or_404(request, server_id: int):
    server = queries.get_smtp_server(request.workspace, server_id)
    if server is None:
        raise Http404("No such SMTP server in this workspace")
    return server


def _key_or_404(request, key_id: int):
    key = queries.get_dkim_key(request.workspace, key_id)
    if key is None:
        raise Http404("No such DKIM key in this workspace")
    return key


def _to_overview(request, anchor: str = ""):
    response = redirect("sending", ws=request.workspace.slug)
    if anchor:
        response["Location"] += f"#{anchor}"
    return response


# -- overview ----------------------------------------------------------------------------------


@workspace_view(p.SETTINGS_VIEW)
@require_GET
def sending(request):
    return _sending_page(request)


# -- SMTP servers ----------------------------------------------------------------------------


def _saved_messages(request, server, verb: str) -> None:
    messages.success(request, f"The server “{server.name}” was {verb}.")
    for warning in server_warnings(server):
        messages.warning(request, warning)


def _server_form_page(request, form, *, server=None, error="", status=200):
    context = {
        "subnav_current": "sending",
        "form": form,
        "server": server,
        "error": error,
    }
    return render(request, "delivery/server_form.html", context, status=status)


@workspace_view(p.SETTINGS_MANAGE)
@sensitive_post_parameters("password")  # kept out of Django's error reports
@require_http_methods(["GET", "POST"])
def server_create(request):
    if request.method != "POST":
        return _server_form_page(request, SmtpServerForm())
    form = SmtpServerForm(request.POST)
    if not form.is_valid():
        return _server_form_page(request, form, status=400)
    try:
        server = actions.do_create_smtp_server(
            request.workspace, actor=Actor.from_request(request), **form.action_values()
        )
    except ValidationError as exc:
        _add_validation_error(form, exc)
        return _server_form_page(request, form, status=400)
    except NameTaken as exc:
        form.add_error("name", str(exc))
        return _server_form_page(request, form, status=409)
    _saved_messages(request, server, "added")
    return _to_overview(request, f"server-{server.pk}")


@workspace_view(p.SETTINGS_MANAGE)
@sensitive_post_parameters("password")  # kept out of Django's error reports
@require_http_methods(["GET", "POST"])
def server_edit(request, server_id: int):
    server = _server_or_404(request, server_id)
    if request.method != "POST":
        form = SmtpServerForm(
            initial=SmtpServerForm.initial_for(server), password_set=server.password_set
        )
        return _server_form_page(request, form, server=server)
    form = SmtpServerForm(request.POST, password_set=server.password_set)
    if not form.is_valid():
        return _server_form_page(request, form, server=server, status=400)
    try:
        saved = actions.do_update_smtp_server(
            server, form.action_values(), actor=Actor.from_request(request)
        )
    except ValidationError as exc:
        _add_validation_error(form, exc)
        return _server_form_page(request, form, server=server, status=400)
    except NameTaken as exc:
        form.add_error("name", str(exc))
        return _server_form_page(request, form, server=server, status=409)
    except ActionError as exc:  # e.g. disabling the relay a running campaign needs
        return _server_form_page(
            request, form, server=server, error=str(exc), status=_status_for(exc)
        )
    _saved_messages(request, saved, "saved")
    return _to_overview(request, f"server-{saved.pk}")


@workspace_view(p.SETTINGS_MANAGE)
@require_http_methods(["GET", "POST"])
def server_delete(request, server_id: int):
    server = _server_or_404(request, server_id)
    context = {"subnav_current": "sending", "server": server, "error": ""}
    if request.method == "POST":
        try:
            actions.do_delete_smtp_server(server, actor=Actor.from_request(request))
        except ActionError as exc:
            context["error"] = str(exc)
            return render(request, "delivery/server_delete.html", context, status=_status_for(exc))
        messages.success(request, f"The server “{server.name}” was deleted.")
        return _to_overview(request)
    return render(request, "delivery/server_delete.html", context)


@workspace_view(p.SETTINGS_MANAGE)
@require_POST
def server_test(request, server_id: int):
    """Connects to the relay now (up to actions.TEST_TIMEOUT seconds) and shows what happened
    on the overview page; the answer is this response only, so a reload tests again."""
    server = _server_or_404(request, server_id)
    report = actions.do_test_smtp_server(server, actor=Actor.from_request(request))
    return _sending_page(request, report=report, tested=server)


# -- DKIM keys -------------------------------------------------------------------------------


@workspace_view(p.SETTINGS_MANAGE)
@require_POST
def dkim_create(request):
    form = DkimKeyForm(request.POST)
    if not form.is_valid():
        return _sending_page(request, dkim_form=form, status=400)
    try:
        key = actions.do_generate_dkim_key(
            request.workspace,
            domain=form.cleaned_data["domain"],
            selector=form.cleaned_data["selector"],
            actor=Actor.from_request(request),
        )
    except ValidationError as exc:
        _add_validation_error(form, exc)
        return _sending_page(request, dkim_form=form, status=400)
    except Conflict as exc:
        form.add_error("domain", str(exc))
        return _sending_page(request, dkim_form=form, status=409)
    messages.success(
        request,
        f"A DKIM key for {key.domain} was generated. Publish the TXT record below in your DNS; "
        "mail from this domain is signed from now on.",
    )
    return _to_overview(request, f"dkim-{key.pk}")


@workspace_view(p.SETTINGS_MANAGE)
@require_http_methods(["GET", "POST"])
def dkim_rotate(request, key_id: int):
    key = _key_or_404(request, key_id)
    old_name, _ = queries.dns_record_for(key)
    status = 200
    if request.method == "POST":
        form = DkimRotateForm(request.POST)
        if form.is_valid():
            try:
                key = actions.do_rotate_dkim_key(
                    key, selector=form.cleaned_data["selector"], actor=Actor.from_request(request)
                )
            except ValidationError as exc:
                _add_validation_error(form, exc)
            else:
                messages.success(
                    request,
                    f"The key of {key.domain} was replaced; mail is signed with the selector "
                    f"{key.selector} from now on. Publish its TXT record below, and keep the old "
                    f"record {old_name} in DNS until mail signed with it has been delivered "
                    "(a week is plenty).",
                )
                return _to_overview(request, f"dkim-{key.pk}")
        status = 400
    else:
        form = DkimRotateForm(initial={"selector": actions.default_selector(avoid=key.selector)})
    context = {"subnav_current": "sending", "key": key, "old_name": old_name, "form": form}
    return render(request, "delivery/dkim_rotate.html", context, status=status)


@workspace_view(p.SETTINGS_MANAGE)
@require_http_methods(["GET", "POST"])
def dkim_delete(request, key_id: int):
    key = _key_or_404(request, key_id)
    if request.method == "POST":
        actions.do_delete_dkim_key(key, actor=Actor.from_request(request))
        messages.success(
            request,
            f"The DKIM key of {key.domain} was deleted; mail from it is sent unsigned. Remove "
            f"the record {key.selector}._domainkey.{key.domain} from DNS once mail signed with "
            "it has been delivered.",
        )
        return _to_overview(request)
    name, _ = queries.dns_record_for(key)
    context = {"subnav_current": "sending", "key": key, "record_name": name}
    return render(request, "delivery/dkim_delete.html", context)
