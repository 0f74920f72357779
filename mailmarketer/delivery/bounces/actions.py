"""Writes of bounce processing's settings: one transaction and one audit row each (never with a
key or a secret in it)."""

from __future__ import annotations

import secrets

from django.db import transaction

from mailmarketer.accounts.actions import ActionError, audit
from mailmarketer.accounts.actors import Actor

from .models import BounceSettings
from .webhooks import key_hash

FIELDS = ("soft_bounce_limit", "soft_bounce_days", "sendgrid_public_key", "ses_topic_arns")


def _settings(workspace) -> BounceSettings:
    found, _ = BounceSettings.objects.select_for_update().get_or_create(workspace=workspace)
    return found


@transaction.atomic
def do_update_bounce_settings(workspace, changes: dict, *, actor: Actor) -> BounceSettings:
    """`changes` may hold FIELDS and `mailgun_signing_key` ("" keeps the stored one; use
    `remove_mailgun_key` to drop it)."""
    conf = _settings(workspace)
    changed = []
    limit = changes.get("soft_bounce_limit", conf.soft_bounce_limit)
    days = changes.get("soft_bounce_days", conf.soft_bounce_days)
    if not (1 <= int(limit) <= 100):
        raise ActionError("must be between 1 and 100", field="soft_bounce_limit")
    if not (1 <= int(days) <= 365):
        raise ActionError("must be between 1 and 365 days", field="soft_bounce_days")
    for name in FIELDS:
        if name in changes and getattr(conf, name) != changes[name]:
            setattr(conf, name, changes[name])
            changed.append(name)
    if changes.get("mailgun_signing_key"):
        conf.mailgun_signing_key = changes["mailgun_signing_key"]
        changed.append("mailgun_signing_key")
    elif changes.get("remove_mailgun_key") and conf.mailgun_signing_key:
        conf.mailgun_signing_key = ""
        changed.append("mailgun_signing_key")
    conf.save()
    if changed:
        audit(
            "bounces.settings_changed",
            actor=actor,
            workspace=workspace,
            obj=conf,
            new={"fields": sorted(changed)},
        )
    return conf


@transaction.atomic
def do_reset_webhook_key(workspace, *, actor: Actor) -> str:
    """A new webhook key (the old URLs stop working); returned once, kept as its hash."""
    conf = _settings(workspace)
    key = secrets.token_urlsafe(32)
    conf.webhook_key_hash = key_hash(key)
    conf.save(update_fields=["webhook_key_hash"])
    audit("bounces.webhook_key_reset", actor=actor, workspace=workspace, obj=conf)
    return key


MAILBOX_FIELDS = (
    "host",
    "port",
    "tls_mode",
    "verify_certificate",
    "username",
    "folder",
    "after",
    "move_to",
    "enabled",
)


@transaction.atomic
def do_save_bounce_mailbox(workspace, changes: dict, *, actor: Actor):
    """Create or change the workspace's bounce mailbox. An empty `password` keeps the stored
    one; pointing a stored password at another host or port, or turning TLS or its
    verification off, needs the password typed again (as for SMTP relays: otherwise a settings
    manager could send the password to a machine of theirs)."""
    from .models import BounceMailbox

    box = BounceMailbox.objects.select_for_update().filter(workspace=workspace).first()
    new = box is None
    box = box or BounceMailbox(workspace=workspace)
    before = {name: getattr(box, name) for name in MAILBOX_FIELDS}
    for name in MAILBOX_FIELDS:
        if name in changes:
            setattr(box, name, changes[name])
    password = changes.get("password") or ""
    exposed = (
        not new
        and box.password
        and (
            box.host != before["host"]
            or box.port != before["port"]
            or (box.tls_mode == box.TlsMode.NONE and before["tls_mode"] != box.TlsMode.NONE)
            or (before["verify_certificate"] and not box.verify_certificate)
        )
    )
    if exposed and not password:
        raise ActionError(
            "type the password again to use it with this host, port or TLS setting",
            field="password",
        )
    if password:
        box.password = password
    if box.after == box.After.MOVE and not (box.move_to or "").strip():
        raise ActionError("name the folder to move processed messages to", field="move_to")
    box.last_error = ""
    box.save()
    changed = sorted(n for n in MAILBOX_FIELDS if before[n] != getattr(box, n))
    audit(
        "bounces.mailbox_saved",
        actor=actor,
        workspace=workspace,
        obj=box,
        new={"fields": changed, "password": "set" if password else "kept"},
    )
    return box
