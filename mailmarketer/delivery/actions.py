"""Writes to the sending settings: SMTP relays and DKIM keys. One transaction each, one audit row
each, and never a secret in the audit row: a password is recorded as "set", "changed" or
"removed", a DKIM private key not at all.

Values are checked here, whoever sends them (the settings pages, the API): a bad value raises
Django's ValidationError naming the field, a name already used raises Conflict, and a change that
would send a running campaign's mail to the local outbox raises Conflict too.

A stored password goes only where it was entered for. Changing the host of a server that has a
password, or taking away its TLS or its certificate check, needs the password entered again:
otherwise anyone allowed to edit the settings could point the relay at a machine of theirs (or
strip its encryption), press "Test connection", and read the password off the wire.

(The `noqa: S105` marks below are on error messages and audit markers that ruff mistakes for
hard-coded passwords because they are stored under the key "password".)
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import re
import threading
import time
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.timezone import now

from mailmarketer.accounts.actions import Conflict, audit
from mailmarketer.accounts.actors import Actor
from mailmarketer.campaigns.models import Campaign

from . import dkim
from .mime import ascii_domain
from .models import DkimKey, SmtpServer
from .senders import config_for
from .smtp import RelayBroken, SmtpConnection, SmtpError

TlsMode = SmtpServer.TlsMode

# Limits of the numbers a server has; the forms and the API schema use the same ones.
MAX_CONNECTIONS = 100
MAX_PER_SECOND = 100_000
MAX_CAP = 2_147_483_647  # the largest PositiveIntegerField value on both databases
MAX_WEIGHT = 1000
MAX_PASSWORD = 1000
TEST_TIMEOUT = 10.0  # seconds the "Test connection" button may wait for the relay

SERVER_FIELDS = (
    "name",
    "host",
    "port",
    "tls_mode",
    "verify_certificate",
    "username",
    "max_connections",
    "messages_per_second",
    "hourly_cap",
    "daily_cap",
    "weight",
    "enabled",
)
# (field, smallest, largest) of the whole-number fields.
NUMBER_RANGES = (
    ("port", 1, 65535),
    ("max_connections", 1, MAX_CONNECTIONS),
    ("messages_per_second", 0, MAX_PER_SECOND),
    ("hourly_cap", 0, MAX_CAP),
    ("daily_cap", 0, MAX_CAP),
    ("weight", 1, MAX_WEIGHT),
)
SERVER_DEFAULTS = {
    "port": 587,
    "tls_mode": TlsMode.STARTTLS,
    "verify_certificate": True,
    "username": "",
    "max_connections": 4,
    "messages_per_second": 0,
    "hourly_cap": 0,
    "daily_cap": 0,
    "weight": 1,
    "enabled": True,
}

DKIM_BITS = 2048

_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_SELECTOR = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class NameTaken(Conflict):
    """Another server of the workspace has this name."""

    code = "name_taken"


# -- checking values -------------------------------------------------------------------------


def _labels_ok(name: str) -> bool:
    labels = name.split(".")
    return len(name) <= 253 and all(_DNS_LABEL.match(label) for label in labels)


def _ascii_name(value: str) -> str | None:
    """The name in ASCII (punycode for an international one), or None when it is not a name."""
    try:
        value = ascii_domain(value).lower()
    except ValueError:
        return None
    return value if _labels_ok(value) else None


def clean_host(raw) -> str:
    """A relay's host: an IP address (IPv6 with or without brackets) or a host name, lower-cased
    and in ASCII. Single-label names ("localhost", "postfix" in a container network) are fine."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError({"host": "enter the relay's host name or IP address"})
    host = raw.strip().lower()
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    host = host.removesuffix(".")
    if ":" in host:
        raise ValidationError({"host": "enter the port in the Port field, not after the host"})
    name = _ascii_name(host) if host and not host.startswith("[") else None
    # "999.1.1.1" has the shape of labels but is neither a name (no top-level domain is all
    # digits) nor an address.
    if name is None or name.rpartition(".")[2].isdigit():
        raise ValidationError(
            {"host": f"“{raw.strip()}” is not a host name or an IP address (e.g. smtp.example.com)"}
        )
    return name


def clean_domain(raw) -> str:
    """A DKIM signing domain: a domain name of two labels or more, lower-cased, IDNA-encoded."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError({"domain": "enter the domain your mail is sent from"})
    value = raw.strip().lower().removesuffix(".")
    if "@" in value:
        raise ValidationError(
            {"domain": f"enter the domain only (the part after @), not “{raw.strip()}”"}
        )
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        pass
    else:
        raise ValidationError({"domain": "a DKIM domain is a domain name, not an IP address"})
    name = _ascii_name(value) if value else None
    if name is None or "." not in name or name.rpartition(".")[2].isdigit():
        raise ValidationError(
            {"domain": f"“{raw.strip()}” is not a domain name (e.g. example.com)"}
        )
    return name


def clean_selector(raw) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError({"selector": "enter a selector, e.g. mm2026"})
    selector = raw.strip().lower()
    if not _SELECTOR.match(selector):
        raise ValidationError(
            {
                "selector": f"“{raw.strip()}” is not a selector: use letters, digits and "
                "hyphens (not first or last), at most 63 characters, e.g. mm2026"
            }
        )
    return selector


def default_selector(avoid: str = "") -> str:
    """ "mm<year>", or a longer dated one when that is the selector being replaced."""
    moment = now()
    for candidate in (f"mm{moment:%Y}", f"mm{moment:%Y%m%d}", f"mm{moment:%Y%m%d%H%M%S}"):
        if candidate != avoid:
            return candidate
    return f"mm{moment:%Y%m%d%H%M%S}x"


def _whole_number(errors: dict, name: str, value, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        errors[name] = f"{name.replace('_', ' ')} must be a whole number"
        return None
    if not low <= value <= high:
        errors[name] = f"{name.replace('_', ' ')} must be from {low:,} to {high:,}, not {value:,}"
        return None
    return value


def _clean_server_values(values: dict) -> dict:
    """Checked, normalised values for the fields present in `values`; every problem at once."""
    errors: dict[str, str] = {}
    clean: dict = {}
    unknown = set(values) - set(SERVER_FIELDS) - {"password"}
    if unknown:
        raise ValidationError({name: "not a setting of an SMTP server" for name in sorted(unknown)})
    if "name" in values:
        name = values["name"].strip() if isinstance(values["name"], str) else ""
        if not name:
            errors["name"] = "give the server a name, e.g. “Office relay”"
        elif len(name) > 100:
            errors["name"] = "the name is longer than 100 characters"
        clean["name"] = name
    if "host" in values:
        try:
            clean["host"] = clean_host(values["host"])
        except ValidationError as exc:
            errors.update({k: v[0] for k, v in exc.message_dict.items()})
    for name, low, high in NUMBER_RANGES:
        if name in values:
            clean[name] = _whole_number(errors, name, values[name], low, high)
    if "tls_mode" in values:
        if values["tls_mode"] not in TlsMode.values:
            errors["tls_mode"] = (
                f"“{values['tls_mode']}” is not a TLS mode: choose {', '.join(TlsMode.values)}"
            )
        clean["tls_mode"] = values["tls_mode"]
    for name in ("verify_certificate", "enabled"):
        if name in values:
            if not isinstance(values[name], bool):
                errors[name] = f"{name.replace('_', ' ')} must be true or false"
            clean[name] = values[name]
    if "username" in values:
        username = values["username"].strip() if isinstance(values["username"], str) else None
        if username is None:
            errors["username"] = "the username must be text"
        elif len(username) > 255:
            errors["username"] = "the username is longer than 255 characters"
        elif _CONTROL.search(username):
            errors["username"] = "the username contains a control character (a line break?)"
        clean["username"] = username
    if "password" in values:
        password = values["password"]
        if not isinstance(password, str):
            errors["password"] = "the password must be text"  # noqa: S105
        elif len(password) > MAX_PASSWORD:
            errors["password"] = f"the password is longer than {MAX_PASSWORD} characters"
        elif any(c in password for c in "\r\n\0"):
            # It goes into an AUTH command line, where these would end or break it.
            errors["password"] = "the password contains a line break or a NUL character"  # noqa: S105
        clean["password"] = password
    if errors:
        raise ValidationError(errors)
    return clean


def _check_credentials(values: dict) -> None:
    if values.get("password") and not values.get("username"):
        raise ValidationError(
            {"password": "a password needs a username: enter the username it belongs to"}
        )


def _check_name_free(workspace, name: str, *, exclude_pk=None) -> None:
    taken = SmtpServer.objects.filter(workspace=workspace, name__iexact=name)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise NameTaken(f"a server named “{name}” already exists in this workspace")


def _check_not_stranding(server: SmtpServer, what: str) -> None:
    """Refuse to take away the last enabled relay while a campaign is sending: the engine
    would send the rest of it to the local outbox, where nobody receives it."""
    if not server.enabled:
        return
    others = (
        SmtpServer.objects.filter(workspace_id=server.workspace_id, enabled=True)
        .exclude(pk=server.pk)
        .exists()
    )
    if others:
        return
    running = (
        Campaign.objects.filter(workspace_id=server.workspace_id, status=Campaign.Status.RUNNING)
        .order_by("pk")
        .values_list("name", flat=True)
        .first()
    )
    if running is not None:
        raise Conflict(
            f"“{server.name}” is the only enabled server and the campaign “{running}” is "
            f"sending: {what} it would send the rest of that campaign to the local outbox, "
            "where nobody receives it. Pause the campaign first, or add another server."
        )


def _audit_values(values: dict) -> dict:
    """What the audit log keeps of a server's values: everything but the password."""
    return {k: v for k, v in values.items() if k != "password"}


# -- SMTP servers ----------------------------------------------------------------------------


@transaction.atomic
def do_create_smtp_server(workspace, *, actor: Actor, **fields) -> SmtpServer:
    """Add a relay. `fields` are SERVER_FIELDS (name and host required) and `password`."""
    missing = [name for name in ("name", "host") if name not in fields]
    if missing:
        raise ValidationError({name: "this field is required" for name in missing})
    values = _clean_server_values({**SERVER_DEFAULTS, "password": "", **fields})
    _check_credentials(values)
    _check_name_free(workspace, values["name"])
    server = SmtpServer(workspace=workspace, **values)
    server.full_clean()
    server.save()
    new = _audit_values(values)
    if values["password"]:
        new["password"] = "set"  # noqa: S105
    audit("sending.server_created", actor=actor, workspace=workspace, obj=server, new=new)
    return server


def _needs_password_again(old: SmtpServer, new: dict) -> str:
    """Why the stored password may not follow this change, or ""."""
    if new["host"] != old.host:
        return f"it was entered for {old.host}, and the host is now {new['host']}"
    if new["tls_mode"] == TlsMode.NONE and old.tls_mode != TlsMode.NONE:
        return "it was entered for an encrypted connection, and TLS is now off"
    was_verified = old.tls_mode != TlsMode.NONE and old.verify_certificate
    if was_verified and new["tls_mode"] != TlsMode.NONE and not new["verify_certificate"]:
        return "it was entered for a relay whose certificate is checked, and the check is now off"
    return ""


@transaction.atomic
def do_update_smtp_server(server: SmtpServer, changes: dict, *, actor: Actor) -> SmtpServer:
    """Change any of SERVER_FIELDS. A "password" key sets a new password ("" removes it); without
    one the stored password is kept (see the module docstring for when it may not be)."""
    server = SmtpServer.objects.select_for_update().get(pk=server.pk)
    values = _clean_server_values(changes)
    merged = {name: getattr(server, name) for name in SERVER_FIELDS}
    merged.update({k: v for k, v in values.items() if k != "password"})
    merged["password"] = values.get("password", server.password)
    if "password" not in values and server.password:
        reason = _needs_password_again(server, merged)
        if reason:
            raise ValidationError(
                {"password": f"enter the password again: the stored one stays where {reason}"}
            )
    _check_credentials(merged)
    if merged["name"] != server.name:
        _check_name_free(server.workspace, merged["name"], exclude_pk=server.pk)
    if not merged["enabled"]:
        _check_not_stranding(server, "disabling")
    old = {
        name: getattr(server, name)
        for name in SERVER_FIELDS
        if merged[name] != getattr(server, name)
    }
    new = {name: merged[name] for name in old}
    if "password" in values:
        # Any password entered counts as a change, even the same one: the audit log must not
        # tell a reader whether a guess matches the stored password.
        if values["password"]:
            new["password"] = "changed" if server.password else "set"
        elif server.password:
            new["password"] = "removed"  # noqa: S105
    if not new:
        return server
    for name, value in merged.items():
        setattr(server, name, value)
    server.full_clean()
    server.save()
    audit(
        "sending.server_updated",
        actor=actor,
        workspace=server.workspace,
        obj=server,
        old=old,
        new=new,
    )
    return server


@transaction.atomic
def do_delete_smtp_server(server: SmtpServer, *, actor: Actor) -> None:
    server = SmtpServer.objects.select_for_update().get(pk=server.pk)
    _check_not_stranding(server, "deleting")
    audit(
        "sending.server_deleted",
        actor=actor,
        workspace=server.workspace,
        obj=server,
        old={"name": server.name, "host": server.host, "port": server.port},
    )
    server.delete()


# -- testing a connection --------------------------------------------------------------------


@dataclass
class ConnectionReport:
    """What "Test connection" found: `ok`, one line for people (`summary`), the EHLO extensions
    seen (name to parameters) and, on failure, the error's kind, code and step."""

    ok: bool
    summary: str
    server: str  # "host:port"
    seconds: float
    extensions: dict[str, str] = field(default_factory=dict)
    hints: list[str] = field(default_factory=list)
    error_kind: str = ""  # "relay_broken" | "transient" | "invalid"
    error_code: int | None = None
    error_step: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _run(coro_factory):
    """Run a coroutine to completion from synchronous code. A view normally has no event loop
    running in its thread; where one is (an async server), the check runs in a thread of its
    own, since asyncio.run() cannot start inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_factory())
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = asyncio.run(coro_factory())
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="smtp-test", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _describe_success(server: SmtpServer, extensions: dict[str, str]) -> tuple[str, list[str]]:
    parts = [f"Connected to {server.host}:{server.port}"]
    if server.tls_mode == TlsMode.IMPLICIT:
        parts.append("over implicit TLS")
    elif server.tls_mode == TlsMode.STARTTLS:
        parts.append("switched to TLS with STARTTLS")
    else:
        parts.append("without TLS")
    if server.tls_mode != TlsMode.NONE:
        parts.append(
            "certificate verified"
            if server.verify_certificate
            else "certificate NOT verified (verification is off)"
        )
    if server.username:
        parts.append(f"logged in as {server.username}")
    hints = []
    if server.tls_mode == TlsMode.NONE and "STARTTLS" in extensions:
        hints.append(
            "The relay offers STARTTLS: choose STARTTLS so that the password and the mail are "
            "encrypted on the way."
        )
    if not server.username and "AUTH" in extensions:
        hints.append(
            f"The relay offers login ({extensions['AUTH'] or 'AUTH'}) and no username is set: "
            "if it requires a login, sending will be refused."
        )
    return ", ".join(parts) + ".", hints


_STEPS = {
    "CONNECT": "connecting",
    "EHLO": "the greeting (EHLO)",
    "STARTTLS": "STARTTLS",
    "AUTH": "the login (AUTH)",
}


def _describe_failure(exc: SmtpError) -> str:
    step = _STEPS.get(exc.command, exc.command or "an unknown step")
    if isinstance(exc, RelayBroken):
        advice = "The relay refuses these settings: retrying will not help until they change."
    else:
        advice = "This may be temporary (the relay down, busy or unreachable): retrying may help."
    return f"Failed at {step}: {exc}. {advice}"


def check_connection(server: SmtpServer, *, timeout: float = TEST_TIMEOUT) -> ConnectionReport:
    """Connect as the engine would (EHLO, STARTTLS, AUTH), then QUIT; nothing is sent."""
    address = f"{server.host}:{server.port}"
    started = time.monotonic()
    try:
        config = dataclasses.replace(config_for(server), timeout=timeout)
    except ValueError as exc:
        return ConnectionReport(
            ok=False,
            summary=f"These settings cannot be used: {exc}.",
            server=address,
            seconds=0.0,
            error_kind="invalid",
        )

    async def probe() -> dict[str, str]:
        connection = SmtpConnection(config)
        await connection.connect()
        extensions = dict(connection.extensions)
        await connection.close()
        return extensions

    try:
        extensions = _run(probe)
    except SmtpError as exc:
        return ConnectionReport(
            ok=False,
            summary=_describe_failure(exc),
            server=address,
            seconds=round(time.monotonic() - started, 3),
            error_kind="relay_broken" if isinstance(exc, RelayBroken) else "transient",
            error_code=exc.code,
            error_step=exc.command,
        )
    summary, hints = _describe_success(server, extensions)
    return ConnectionReport(
        ok=True,
        summary=summary,
        server=address,
        seconds=round(time.monotonic() - started, 3),
        extensions=extensions,
        hints=hints,
    )


def do_test_smtp_server(
    server: SmtpServer, *, actor: Actor, timeout: float = TEST_TIMEOUT
) -> ConnectionReport:
    """Test the connection and audit that it was tested, with the outcome. The network part runs
    outside any transaction: holding one open for up to `timeout` seconds would block every
    other writer on SQLite."""
    server = SmtpServer.objects.get(pk=server.pk)  # the stored values, password included
    report = check_connection(server, timeout=timeout)
    with transaction.atomic():
        audit(
            "sending.server_tested",
            actor=actor,
            workspace=server.workspace,
            obj=server,
            new={"ok": report.ok, "result": report.summary[:500]},
        )
    return report


# -- DKIM keys -------------------------------------------------------------------------------


def _dkim_audit(key: DkimKey) -> dict:
    return {"domain": key.domain, "selector": key.selector, "bits": DKIM_BITS}


def do_generate_dkim_key(workspace, *, domain: str, selector: str = "", actor: Actor) -> DkimKey:
    """A new key pair for `domain`; the private key is encrypted at rest by its field."""
    domain = clean_domain(domain)
    selector = clean_selector(selector) if selector else default_selector()
    if DkimKey.objects.filter(workspace=workspace, domain=domain).exists():
        raise Conflict(f"{domain} already has a DKIM key: rotate it to replace it")
    # Generated before the transaction opens: it takes a noticeable fraction of a second, and
    # SQLite's write lock is held from the first statement.
    private_pem, public_b64 = dkim.generate_key(DKIM_BITS)
    with transaction.atomic():
        key = DkimKey(
            workspace=workspace,
            domain=domain,
            selector=selector,
            private_key=private_pem,
            public_key=public_b64,
        )
        key.full_clean(validate_unique=False, validate_constraints=False)
        try:
            with transaction.atomic():
                key.save()
        except IntegrityError:
            raise Conflict(f"{domain} already has a DKIM key: rotate it to replace it") from None
        audit(
            "sending.dkim_generated",
            actor=actor,
            workspace=workspace,
            obj=key,
            new=_dkim_audit(key),
        )
    return key


def do_rotate_dkim_key(key: DkimKey, *, selector: str = "", actor: Actor) -> DkimKey:
    """Replace the key pair and selector of a domain, keeping the row (and its id). The new
    selector must differ from the old one: mail already signed names the old selector, and its
    DNS record must stay published until that mail has been delivered and read."""
    selector = clean_selector(selector) if selector else ""
    private_pem, public_b64 = dkim.generate_key(DKIM_BITS)  # before the transaction: see above
    with transaction.atomic():
        key = DkimKey.objects.select_for_update().get(pk=key.pk)
        old_selector = key.selector
        selector = selector or default_selector(avoid=old_selector)
        if selector == old_selector:
            raise ValidationError(
                {
                    "selector": f"choose a selector other than the current one ({old_selector}):"
                    " mail already signed still needs the current record in DNS"
                }
            )
        key.selector = selector
        key.private_key = private_pem
        key.public_key = public_b64
        key.created_at = now()
        key.save(update_fields=["selector", "private_key", "public_key", "created_at"])
        audit(
            "sending.dkim_rotated",
            actor=actor,
            workspace=key.workspace,
            obj=key,
            old={"selector": old_selector},
            new=_dkim_audit(key),
        )
    return key


@transaction.atomic
def do_delete_dkim_key(key: DkimKey, *, actor: Actor) -> None:
    audit(
        "sending.dkim_deleted",
        actor=actor,
        workspace=key.workspace,
        obj=key,
        old={"domain": key.domain, "selector": key.selector},
    )
    key.delete()
