"""Writes of website tracking: sites (add, change). Each is one transaction with its audit row.

A site's domain and origins come from staff and end up compared with a browser's Origin header,
so both are checked here, where the API and the pages share them: a domain is a host name, an
origin is scheme://host[:port] and nothing more.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction

from mailmarketer.accounts.actions import ActionError, audit
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import Workspace

from .models_web import IpMode, Site

_HOST = re.compile(
    r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)
FIELDS = ("name", "domain", "origins", "ip_mode", "ip_days", "retention_days")


def clean_domain(value: str) -> str:
    domain = (value or "").strip().lower().removeprefix("https://").removeprefix("http://")
    domain = domain.rstrip("/")
    if not _HOST.match(domain):
        raise ActionError("Enter a host name such as www.example.com.", field="domain")
    return domain


def clean_origins(value: str, domain: str) -> str:
    lines = [line.strip() for line in (value or "").splitlines() if line.strip()]
    if not lines:
        lines = [f"https://{domain}"] + (
            [] if domain.startswith("www.") else [f"https://www.{domain}"]
        )
    if len(lines) > 20:
        raise ActionError("At most 20 origins.", field="origins")
    cleaned = []
    for line in lines:
        parts = urlsplit(line)
        host = parts.hostname or ""
        if (
            parts.scheme not in ("http", "https")
            or (not _HOST.match(host) and host not in ("127.0.0.1", "::1"))
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or parts.username
        ):
            raise ActionError(
                f"{line[:100]!r} is not an origin: write scheme://host[:port], such as "
                "https://www.example.com.",
                field="origins",
            )
        port = f":{parts.port}" if parts.port else ""
        cleaned.append(f"{parts.scheme}://{parts.hostname}{port}")
    return "\n".join(dict.fromkeys(cleaned))


def _clean(fields: dict) -> dict:
    name = (fields.get("name") or "").strip()[:100]
    domain = clean_domain(fields.get("domain", ""))
    out = {
        "name": name or domain,
        "domain": domain,
        "origins": clean_origins(fields.get("origins", ""), domain),
        "ip_mode": fields.get("ip_mode") or IpMode.TRUNCATE,
        "ip_days": int(fields.get("ip_days") or 7),
        "retention_days": int(fields.get("retention_days") or 395),
    }
    if out["ip_mode"] not in IpMode.values:
        raise ActionError("Choose how IP addresses are kept.", field="ip_mode")
    if not 1 <= out["ip_days"] <= 365:
        raise ActionError("Between 1 and 365 days.", field="ip_days")
    if not 1 <= out["retention_days"] <= 3650:
        raise ActionError("Between 1 and 3650 days.", field="retention_days")
    return out


def do_create_site(workspace: Workspace, *, actor: Actor, **fields) -> Site:
    values = _clean(fields)
    try:
        with transaction.atomic():
            site = Site.objects.create(workspace=workspace, **values)
            audit("tracking.site_created", actor=actor, workspace=workspace, obj=site, new=values)
    except IntegrityError as exc:
        raise ActionError(
            "This workspace already has a site with that domain.", field="domain"
        ) from exc
    return site


def do_update_site(site: Site, *, actor: Actor, **fields) -> Site:
    values = _clean({f: getattr(site, f) for f in FIELDS} | fields)
    old = {f: getattr(site, f) for f in FIELDS}
    try:
        with transaction.atomic():
            Site.objects.filter(pk=site.pk).update(**values)
            audit(
                "tracking.site_changed",
                actor=actor,
                workspace=site.workspace,
                obj=site,
                old=old,
                new=values,
            )
    except IntegrityError as exc:
        raise ActionError(
            "This workspace already has a site with that domain.", field="domain"
        ) from exc
    site.refresh_from_db()
    return site
