"""/senders and /dkim: the workspace's SMTP relays and DKIM keys, thin over delivery.actions.

Reading needs `settings.view`, every change (and a connection test) `settings.manage`. A stored
password is never sent back: a sender says only whether it has one (`password_set`). A DKIM key
is answered with its public half and the DNS record to publish, never its private key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from django.http import Http404
from ninja import Router, Schema, Status
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.actors import Actor
from mailmarketer.delivery import actions, queries

from .access import require
from .schemas import Error

router = Router(tags=["sending"])

READ_ERRORS = {401: Error, 403: Error, 429: Error}
ONE_ERRORS = {**READ_ERRORS, 404: Error}
WRITE_ERRORS = {**ONE_ERRORS, 400: Error, 409: Error, 422: Error}

TlsMode = Literal["none", "starttls", "implicit"]


class _Body(BaseModel):
    # Unknown fields are an error and types are strict ("587" is not a port). Strings are not
    # stripped here: a password may begin or end with a space (the actions strip the rest).
    model_config = ConfigDict(extra="forbid", strict=True)


# -- schemas ---------------------------------------------------------------------------------


class SenderOut(Schema):
    id: int
    name: str
    host: str
    port: int
    tls_mode: TlsMode
    verify_certificate: bool
    username: str
    password_set: bool = Field(description="Whether a password is stored; it is never returned")
    max_connections: int
    messages_per_second: int = Field(description="Across all workers; 0: no limit")
    hourly_cap: int = Field(description="0: no cap")
    daily_cap: int = Field(description="0: no cap")
    weight: int = Field(description="Share of the mail among enabled senders")
    enabled: bool
    created_at: datetime


class SendersOut(Schema):
    senders: list[SenderOut]
    uses_outbox: bool = Field(
        description="True when no sender is enabled: campaigns go to the local outbox"
    )


class SenderIn(_Body):
    name: StrictStr = Field(max_length=100)
    host: StrictStr = Field(description="Host name or IP address", max_length=255)
    port: StrictInt = Field(587, ge=1, le=65535)
    tls_mode: TlsMode = "starttls"
    verify_certificate: StrictBool = True
    username: StrictStr = Field("", max_length=255)
    password: StrictStr = Field("", max_length=actions.MAX_PASSWORD, description="Write-only")
    max_connections: StrictInt = Field(4, ge=1, le=actions.MAX_CONNECTIONS)
    messages_per_second: StrictInt = Field(0, ge=0, le=actions.MAX_PER_SECOND)
    hourly_cap: StrictInt = Field(0, ge=0, le=actions.MAX_CAP)
    daily_cap: StrictInt = Field(0, ge=0, le=actions.MAX_CAP)
    weight: StrictInt = Field(1, ge=1, le=actions.MAX_WEIGHT)
    enabled: StrictBool = True


class SenderPatch(_Body):
    # Fields left out are left unchanged; null is not a value here.
    name: StrictStr = Field(None, max_length=100)  # type: ignore[assignment]
    host: StrictStr = Field(None, max_length=255)  # type: ignore[assignment]
    port: StrictInt = Field(None, ge=1, le=65535)  # type: ignore[assignment]
    tls_mode: TlsMode = None  # type: ignore[assignment]
    verify_certificate: StrictBool = None  # type: ignore[assignment]
    username: StrictStr = Field(None, max_length=255)  # type: ignore[assignment]
    password: StrictStr = Field(  # type: ignore[assignment]
        None,
        max_length=actions.MAX_PASSWORD,
        description='A new password; "" removes the stored one. Left out: kept. Changing the '
        "host, or turning TLS or certificate verification off, needs it sent again.",
    )
    max_connections: StrictInt = Field(None, ge=1, le=actions.MAX_CONNECTIONS)  # type: ignore[assignment]
    messages_per_second: StrictInt = Field(None, ge=0, le=actions.MAX_PER_SECOND)  # type: ignore[assignment]
    hourly_cap: StrictInt = Field(None, ge=0, le=actions.MAX_CAP)  # type: ignore[assignment]
    daily_cap: StrictInt = Field(None, ge=0, le=actions.MAX_CAP)  # type: ignore[assignment]
    weight: StrictInt = Field(None, ge=1, le=actions.MAX_WEIGHT)  # type: ignore[assignment]
    enabled: StrictBool = None  # type: ignore[assignment]


class TestOut(Schema):
    ok: bool
    summary: str = Field(description="What happened, for people")
    server: str = Field(description="host:port")
    seconds: float
    extensions: dict[str, str] = Field(description="EHLO extensions the relay offered")
    hints: list[str]
    error_kind: str = Field(
        description='"" on success; "relay_broken" (the settings are refused), "transient" '
        '(timeout, refused or dropped connection, 4xx) or "invalid" (unusable settings)'
    )
    error_code: int | None = Field(description="The SMTP reply code, when there was one")
    error_step: str = Field(description="CONNECT, EHLO, STARTTLS or AUTH; '' on success")


class DnsRecord(Schema):
    type: Literal["TXT"]
    name: str
    value: str


class DkimOut(Schema):
    id: int
    domain: str
    selector: str
    public_key: str = Field(description="Base64 of the DER public key (the record's p=)")
    dns_record: DnsRecord
    created_at: datetime


class DkimListOut(Schema):
    keys: list[DkimOut]


class DkimIn(_Body):
    domain: StrictStr = Field(
        None,  # type: ignore[arg-type]
        max_length=255,
        description="Default: the domain of the workspace's sender address",
    )
    selector: StrictStr = Field(
        None,  # type: ignore[arg-type]
        max_length=63,
        description='Letters, digits and hyphens; default "mm<year>"',
    )


class DkimRotateIn(_Body):
    selector: StrictStr = Field(
        None,  # type: ignore[arg-type]
        max_length=63,
        description="Must differ from the current one; default a dated one",
    )


# -- helpers ---------------------------------------------------------------------------------


def sender_out(server) -> dict:
    """A server read through queries (with `password_set`, password unread)."""
    out = {name: getattr(server, name) for name in actions.SERVER_FIELDS}
    out.update(id=server.pk, password_set=server.password_set, created_at=server.created_at)
    return out


def dkim_out(key) -> dict:
    name, value = queries.dns_record_for(key)
    return {
        "id": key.pk,
        "domain": key.domain,
        "selector": key.selector,
        "public_key": key.public_key,
        "dns_record": {"type": "TXT", "name": name, "value": value},
        "created_at": key.created_at,
    }


def sender_or_404(request, sender_id: int):
    server = queries.get_smtp_server(request.workspace, sender_id)
    if server is None:
        raise Http404("no such sender in this workspace")
    return server


def key_or_404(request, key_id: int):
    key = queries.get_dkim_key(request.workspace, key_id)
    if key is None:
        raise Http404("no such DKIM key in this workspace")
    return key


# -- senders ---------------------------------------------------------------------------------


@router.get("/senders", response={200: SendersOut, **READ_ERRORS}, summary="SMTP senders")
@require(p.SETTINGS_VIEW)
def all_senders(request):
    """By name. Passwords are never returned, only whether one is set."""
    servers = queries.smtp_servers_for(request.workspace)
    return {
        "senders": [sender_out(s) for s in servers],
        "uses_outbox": not any(s.enabled for s in servers),
    }


@router.post("/senders", response={201: SenderOut, **WRITE_ERRORS}, summary="Add an SMTP sender")
@require(p.SETTINGS_MANAGE)
def create_sender(request, payload: SenderIn):
    """A name already used in this workspace is refused with 409. The password is stored
    encrypted and never returned."""
    server = actions.do_create_smtp_server(
        request.workspace, actor=Actor.from_request(request), **payload.model_dump()
    )
    return Status(201, sender_out(queries.get_smtp_server(request.workspace, server.pk)))


@router.get("/senders/{sender_id}", response={200: SenderOut, **ONE_ERRORS}, summary="A sender")
@require(p.SETTINGS_VIEW)
def get_sender(request, sender_id: int):
    return sender_out(sender_or_404(request, sender_id))


@router.patch(
    "/senders/{sender_id}", response={200: SenderOut, **WRITE_ERRORS}, summary="Change a sender"
)
@require(p.SETTINGS_MANAGE)
def patch_sender(request, sender_id: int, payload: SenderPatch):
    """Send only what changes. Disabling the last enabled sender while a campaign is sending is
    refused with 409 (the rest would go to the local outbox)."""
    server = sender_or_404(request, sender_id)
    actions.do_update_smtp_server(
        server, payload.model_dump(exclude_unset=True), actor=Actor.from_request(request)
    )
    return sender_out(queries.get_smtp_server(request.workspace, server.pk))


@router.delete(
    "/senders/{sender_id}", response={204: None, **WRITE_ERRORS}, summary="Delete a sender"
)
@require(p.SETTINGS_MANAGE)
def delete_sender(request, sender_id: int):
    """Refused with 409 for the last enabled sender while a campaign is sending."""
    actions.do_delete_smtp_server(
        sender_or_404(request, sender_id), actor=Actor.from_request(request)
    )
    return Status(204, None)


@router.post(
    "/senders/{sender_id}/test",
    response={200: TestOut, **ONE_ERRORS},
    summary="Test the connection to a sender",
)
@require(p.SETTINGS_MANAGE)
def test_sender(request, sender_id: int):
    """Connects as the delivery engine would (TLS, EHLO, STARTTLS, login), waiting at most 10 s,
    then disconnects; nothing is sent. Answers 200 whether the test passed or not: see `ok`."""
    server = sender_or_404(request, sender_id)
    return actions.do_test_smtp_server(server, actor=Actor.from_request(request)).as_dict()


# -- DKIM ------------------------------------------------------------------------------------


@router.get("/dkim", response={200: DkimListOut, **READ_ERRORS}, summary="DKIM keys")
@require(p.SETTINGS_VIEW)
def all_keys(request):
    """By domain, each with the DNS record to publish. Private keys are never returned."""
    return {"keys": [dkim_out(k) for k in queries.dkim_keys_for(request.workspace)]}


@router.post("/dkim", response={201: DkimOut, **WRITE_ERRORS}, summary="Generate a DKIM key")
@require(p.SETTINGS_MANAGE)
def create_key(request, payload: DkimIn):
    """A new RSA-2048 key pair for a domain (default: the sender address's); 409 when the
    domain has a key already (rotate it instead). Publish `dns_record`."""
    domain = payload.domain if payload.domain is not None else ""
    if not domain.strip():
        domain = queries.sender_domain(request.workspace)
    key = actions.do_generate_dkim_key(
        request.workspace,
        domain=domain,
        selector=payload.selector or "",
        actor=Actor.from_request(request),
    )
    return Status(201, dkim_out(key))


@router.post(
    "/dkim/{key_id}/rotate", response={200: DkimOut, **WRITE_ERRORS}, summary="Rotate a DKIM key"
)
@require(p.SETTINGS_MANAGE)
def rotate_key(request, key_id: int, payload: DkimRotateIn):
    """A new key pair under a new selector replaces the old one. Keep the old record in DNS
    until mail signed with it has been delivered."""
    key = key_or_404(request, key_id)
    selector = payload.selector or ""
    return dkim_out(
        actions.do_rotate_dkim_key(key, selector=selector, actor=Actor.from_request(request))
    )


@router.delete("/dkim/{key_id}", response={204: None, **WRITE_ERRORS}, summary="Delete a DKIM key")
@require(p.SETTINGS_MANAGE)
def delete_key(request, key_id: int):
    actions.do_delete_dkim_key(key_or_404(request, key_id), actor=Actor.from_request(request))
    return Status(204, None)
