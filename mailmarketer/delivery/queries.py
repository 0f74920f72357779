"""Reads for delivery.

Sending settings: the relays and DKIM keys of a workspace, always looked up inside it (an id
from another workspace finds nothing). Lists leave the secret columns unread (deferred): a page
that shows "password set" has no business decrypting the password.
"""

from __future__ import annotations

from django.db.models import BooleanField, ExpressionWrapper, Q

from . import dkim
from .mime import ascii_domain
from .models import DkimKey, SmtpServer


def _servers(workspace):
    return (
        SmtpServer.objects.filter(workspace=workspace)
        .defer("password")
        .annotate(
            password_set=ExpressionWrapper(~Q(password=""), output_field=BooleanField())
        )
    )


def smtp_servers_for(workspace) -> list[SmtpServer]:
    """The workspace's relays by name, each with `password_set` and without its password."""
    return list(_servers(workspace).order_by("name", "pk"))


def get_smtp_server(workspace, server_id) -> SmtpServer | None:
    """One relay of the workspace (with `password_set`, password unread), or None."""
    return _servers(workspace).filter(pk=server_id).first()


def uses_outbox(workspace) -> bool:
    """True when no relay is enabled: campaigns then go to the local outbox."""
    return not SmtpServer.objects.filter(workspace=workspace, enabled=True).exists()


def dkim_keys_for(workspace) -> list[DkimKey]:
    """The workspace's DKIM keys by domain, private keys unread."""
    return list(
        DkimKey.objects.filter(workspace=workspace).defer("private_key").order_by("domain")
    )


def get_dkim_key(workspace, key_id) -> DkimKey | None:
    return DkimKey.objects.filter(workspace=workspace, pk=key_id).defer("private_key").first()


def dns_record_for(key: DkimKey) -> tuple[str, str]:
    """(name, value) of the TXT record that publishes the key's public half."""
    return dkim.dns_record(key.selector, key.domain, key.public_key)


def sender_domain(workspace) -> str:
    """The domain of the workspace's sender address in ASCII, or "" when there is none."""
    domain = (workspace.sender_email or "").rpartition("@")[2].strip().lower()
    if not domain:
        return ""
    try:
        return ascii_domain(domain).lower()
    except ValueError:
        return ""
