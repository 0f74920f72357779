"""Every write that matters in accounts: one transaction each, one audit row each, side effects
(mail) deferred until the transaction commits."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone

from mailmarketer.lib import emails

from .actors import Actor
from .models import (
    RECOVERY_ALPHABET,
    RECOVERY_LENGTH,
    RESERVED_WORKSPACE_SLUGS,
    ApiToken,
    AuditEvent,
    Invitation,
    Membership,
    RecoveryCode,
    TotpDevice,
    User,
    Workspace,
    hash_recovery_code,
    hash_token,
    normalise_recovery_code,
)
from .permissions import OWNER_ONLY_ROLES, Role, permissions_for

# Fields of a workspace that staff may change, with the audit log recording old and new values.
WORKSPACE_EDITABLE = (
    "name",
    "sender_name",
    "sender_email",
    "postal_address",
    "timezone",
    "require_2fa",
    "consent_store_ip",
    "tracking_mode",
    "tracking_requires_consent",
)


class ActionError(Exception):
    """A write refused for a reason the person can act on; the message says which. `field`
    names the input it is about (None: the request as a whole), so a form puts the message
    under that field and the API names it, without reading the message text."""

    code = "invalid"
    field: str | None = None

    def __init__(self, message: str, code: str | None = None, *, field: str | None = None):
        super().__init__(message)
        if code:
            self.code = code
        if field:
            self.field = field


class Conflict(ActionError):
    code = "conflict"


def audit(
    event: str,
    *,
    actor: Actor,
    workspace: Workspace | None = None,
    obj=None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    old: dict | None = None,
    new: dict | None = None,
) -> AuditEvent:
    if obj is not None:
        object_type = object_type or obj._meta.model_name
        object_id = object_id or str(obj.pk)
        object_repr = object_repr or str(obj)
    return AuditEvent.objects.create(
        workspace=workspace,
        actor_user=actor.user,
        actor_token=actor.token,
        actor_label=actor.label[:200],
        event=event,
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr[:200],
        ip=actor.ip,
        old=old,
        new=new,
    )


# -- workspaces and users ------------------------------------------------------------------


@transaction.atomic
def do_create_workspace(*, name: str, slug: str, owner: User | None, actor: Actor, **fields):
    if slug in RESERVED_WORKSPACE_SLUGS:
        raise ActionError(
            f"{slug!r} is a page of the app, not available as a workspace address", field="slug"
        )
    if Workspace.objects.filter(slug=slug).exists():
        raise Conflict(f"a workspace with the slug {slug!r} already exists")
    workspace = Workspace(name=name, slug=slug, **fields)
    workspace.full_clean()
    workspace.save()
    audit(
        "workspace.created",
        actor=actor,
        workspace=workspace,
        obj=workspace,
        new={"name": name, "slug": slug},
    )
    if owner is not None:
        Membership.objects.create(user=owner, workspace=workspace, role=Role.OWNER)
        audit("member.added", actor=actor, workspace=workspace, obj=owner, new={"role": Role.OWNER})
    return workspace


@transaction.atomic
def do_update_workspace(workspace: Workspace, changes: dict, *, actor: Actor) -> Workspace:
    unknown = set(changes) - set(WORKSPACE_EDITABLE)
    if unknown:
        raise ActionError(f"these workspace fields cannot be changed: {', '.join(sorted(unknown))}")
    old = {k: getattr(workspace, k) for k in changes}
    for key, value in changes.items():
        setattr(workspace, key, value)
    workspace.full_clean()
    diff_old = {k: v for k, v in old.items() if v != changes[k]}
    if not diff_old:
        return workspace
    workspace.save(update_fields=list(diff_old))
    audit(
        "workspace.updated",
        actor=actor,
        workspace=workspace,
        obj=workspace,
        old=diff_old,
        new={k: changes[k] for k in diff_old},
    )
    return workspace


@transaction.atomic
def do_create_user(*, email: str, name: str = "", password: str | None, actor: Actor) -> User:
    email = User.objects.normalize_email(email)
    if User.objects.filter(email=email).exists():
        raise Conflict(f"a user with the email {email} already exists")
    user = User(email=email, name=name)
    user.full_clean(exclude=["password"])
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        raise Conflict(f"a user with the email {email} already exists") from None
    audit("user.created", actor=actor, obj=user)
    return user


@transaction.atomic
def do_add_member(workspace: Workspace, user: User, role: str, *, actor: Actor) -> Membership:
    if role not in Role.values:
        raise ActionError(f"unknown role {role!r}; choose one of {', '.join(Role.values)}")
    membership, created = Membership.objects.get_or_create(
        user=user, workspace=workspace, defaults={"role": role}
    )
    if not created:
        raise Conflict(f"{user.email} is already a member of {workspace.name}")
    audit("member.added", actor=actor, workspace=workspace, obj=user, new={"role": role})
    return membership


@transaction.atomic
def do_setup_first_owner(
    *, email: str, name: str, password: str, workspace_name: str, workspace_slug: str
) -> tuple[User, Workspace]:
    """The first-run setup: only while no user exists at all."""
    if User.objects.exists():
        raise Conflict("setup has already been done; sign in instead")
    actor = Actor.system("first-run setup")
    user = do_create_user(email=email, name=name, password=password, actor=actor)
    workspace = do_create_workspace(
        name=workspace_name, slug=workspace_slug, owner=user, actor=Actor.for_user(user)
    )
    return user, workspace


# -- authentication events ------------------------------------------------------------------


def record_login(user: User, *, ip: str | None, method: str = "password") -> None:
    audit("auth.login", actor=Actor.for_user(user, ip), obj=user, new={"method": method})


def record_login_failed(email: str, *, ip: str | None, reason: str) -> None:
    email = User.objects.normalize_email(email)[:200]
    audit(
        "auth.login_failed",
        actor=Actor(ip=ip, label=email),
        object_type="user",
        object_repr=email,
        new={"reason": reason},
    )


def record_password_reset_request(email: str, *, ip: str | None) -> None:
    email = User.objects.normalize_email(email)[:200]
    audit(
        "auth.password_reset_requested",
        actor=Actor(ip=ip, label=email),
        object_type="user",
        object_repr=email,
    )


def record_logout(user: User, *, ip: str | None) -> None:
    audit("auth.logout", actor=Actor.for_user(user, ip), obj=user)


@transaction.atomic
def do_change_password(
    user: User, new_password: str, *, actor: Actor, event="auth.password_changed"
):
    """Sets the password; the session hash depends on it, so every other session ends."""
    user.set_password(new_password)
    user.save(update_fields=["password"])
    audit(event, actor=actor, obj=user)


def _bump_stamp(user: User) -> None:
    user.security_stamp = secrets.token_hex(16)
    user.save(update_fields=["security_stamp"])


@transaction.atomic
def do_start_totp(user: User, *, actor: Actor) -> TotpDevice:
    """An unconfirmed device whose QR code the person scans; replaces any unconfirmed one."""
    TotpDevice.objects.filter(user=user, confirmed=False).delete()
    return TotpDevice.objects.create(
        user=user, name="Authenticator app", key=secrets.token_hex(20), confirmed=False
    )


@transaction.atomic
def do_confirm_totp(device: TotpDevice, token: str, *, actor: Actor) -> bool:
    if not device.verify_token(token):
        return False
    TotpDevice.objects.filter(user=device.user, confirmed=True).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    _bump_stamp(device.user)
    audit("auth.2fa_enabled", actor=actor, obj=device.user)
    return True


RECOVERY_CODES = 10


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


@transaction.atomic
def do_make_recovery_codes(user: User, *, actor: Actor) -> list[str]:
    """Ten new single-use codes, replacing any old ones; returned once, stored hashed."""
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
    RecoveryCode.objects.filter(user=user).delete()
    RecoveryCode.objects.bulk_create(
        RecoveryCode(user=user, code_hash=hash_recovery_code(user.pk, c.replace("-", "")))
        for c in codes
    )
    audit("auth.recovery_codes_made", actor=actor, obj=user, new={"count": RECOVERY_CODES})
    return codes


@transaction.atomic
def do_use_recovery_code(user: User, entered: str, *, actor: Actor) -> bool:
    """Spends one unused code: a conditional UPDATE, so two sign-ins racing with the same code
    cannot both succeed. The audit row says how many are left (never which code)."""
    code = normalise_recovery_code(entered)
    if code is None:
        return False
    spent = RecoveryCode.objects.filter(
        user=user, code_hash=hash_recovery_code(user.pk, code), used_at__isnull=True
    ).update(used_at=timezone.now())
    if spent != 1:
        return False
    left = RecoveryCode.objects.filter(user=user, used_at__isnull=True).count()
    audit("auth.recovery_code_used", actor=actor, obj=user, new={"left": left})
    return True


@transaction.atomic
def do_disable_totp(user: User, *, actor: Actor) -> None:
    TotpDevice.objects.filter(user=user).delete()
    RecoveryCode.objects.filter(user=user).delete()
    _bump_stamp(user)
    audit("auth.2fa_disabled", actor=actor, obj=user)


# -- team ------------------------------------------------------------------------------------


def _owner_count(workspace: Workspace) -> int:
    # Lock the owners' rows on PostgreSQL so two concurrent demotions cannot both pass the
    # check; SQLite's IMMEDIATE transactions already serialise writers.
    owners = Membership.objects.filter(workspace=workspace, role=Role.OWNER)
    return len(list(owners.select_for_update()))


def _actor_role(workspace: Workspace, actor: Actor) -> str | None:
    if actor.token is not None:
        return actor.token.role
    if actor.user is not None:
        m = Membership.objects.filter(workspace=workspace, user=actor.user).first()
        return m.role if m else None
    return Role.OWNER  # the system (CLI) acts with full authority


def _require_owner_for(role_values: set[str], workspace: Workspace, actor: Actor) -> None:
    if role_values & OWNER_ONLY_ROLES and _actor_role(workspace, actor) != Role.OWNER:
        raise ActionError("only an owner can grant or take away the owner role", code="forbidden")


@transaction.atomic
def do_change_role(membership: Membership, role: str, *, actor: Actor) -> Membership:
    if role not in Role.values:
        raise ActionError(f"unknown role {role!r}; choose one of {', '.join(Role.values)}")
    old = membership.role
    if old == role:
        return membership
    _require_owner_for({old, role}, membership.workspace, actor)
    if old == Role.OWNER and _owner_count(membership.workspace) <= 1:
        raise Conflict("a workspace must keep at least one owner: make someone else owner first")
    membership.role = role
    membership.save(update_fields=["role"])
    audit(
        "member.role_changed",
        actor=actor,
        workspace=membership.workspace,
        obj=membership.user,
        old={"role": old},
        new={"role": role},
    )
    return membership


@transaction.atomic
def do_remove_member(membership: Membership, *, actor: Actor) -> None:
    workspace = membership.workspace
    _require_owner_for({membership.role}, workspace, actor)
    if membership.role == Role.OWNER and _owner_count(workspace) <= 1:
        raise Conflict("the last owner cannot be removed: make someone else owner first")
    user = membership.user
    membership.delete()
    audit(
        "member.removed", actor=actor, workspace=workspace, obj=user, old={"role": membership.role}
    )


INVITE_SALT = "mailmarketer.accounts.invitation"


def invitation_token(invitation: Invitation) -> str:
    return signing.dumps([invitation.pk, invitation.nonce], salt=INVITE_SALT, compress=False)


def invitation_from_token(token: str) -> Invitation | None:
    """The open invitation the token names, or None (bad signature, expired, used, revoked)."""
    try:
        pk, nonce = signing.loads(token, salt=INVITE_SALT, max_age=settings.INVITATION_MAX_AGE)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    invitation = Invitation.objects.select_related("workspace").filter(pk=pk).first()
    if invitation is None or not secrets.compare_digest(invitation.nonce, str(nonce)):
        return None
    return invitation if invitation.is_open else None


@transaction.atomic
def do_invite_member(workspace: Workspace, *, email: str, role: str, actor: Actor) -> Invitation:
    email = User.objects.normalize_email(email)
    if role not in Role.values:
        raise ActionError(f"unknown role {role!r}; choose one of {', '.join(Role.values)}")
    _require_owner_for({role}, workspace, actor)
    if Membership.objects.filter(workspace=workspace, user__email=email).exists():
        raise Conflict(f"{email} is already a member of this workspace")
    invitation = Invitation(
        workspace=workspace,
        email=email,
        role=role,
        invited_by=actor.user,
        expires_at=timezone.now() + timedelta(seconds=settings.INVITATION_MAX_AGE),
    )
    invitation.full_clean(exclude=["invited_by", "accepted_by"])
    # A new invitation replaces any open one for the same address.
    Invitation.objects.filter(
        workspace=workspace, email=email, accepted_at=None, revoked_at=None
    ).update(revoked_at=timezone.now())
    invitation.save()
    audit(
        "member.invited",
        actor=actor,
        workspace=workspace,
        object_type="invitation",
        object_id=str(invitation.pk),
        object_repr=email,
        new={"role": role},
    )
    link = f"{settings.BASE_URL}/invite/{invitation_token(invitation)}/"
    inviter = actor.user.display_name if actor.user else actor.label
    transaction.on_commit(
        lambda: emails.send(
            "invitation",
            to=email,
            context={
                "workspace_name": workspace.name,
                "inviter": inviter,
                "role": role,
                "link": link,
                "days": settings.INVITATION_MAX_AGE // 86400,
            },
        )
    )
    return invitation


@transaction.atomic
def do_revoke_invitation(invitation: Invitation, *, actor: Actor) -> None:
    if invitation.accepted_at or invitation.revoked_at:
        return
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    audit(
        "member.invitation_revoked",
        actor=actor,
        workspace=invitation.workspace,
        object_type="invitation",
        object_id=str(invitation.pk),
        object_repr=invitation.email,
    )


@transaction.atomic
def do_accept_invitation(invitation: Invitation, user: User, *, actor: Actor) -> Membership:
    # Re-read under lock: single use even when the link is clicked twice at once.
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if not invitation.is_open:
        raise Conflict("this invitation has already been used, revoked or has expired")
    if user.email != invitation.email:
        raise ActionError(
            f"this invitation is for {invitation.email}; sign in with that address to accept it"
        )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    membership, created = Membership.objects.get_or_create(
        user=user, workspace=invitation.workspace, defaults={"role": invitation.role}
    )
    if created:
        audit(
            "member.joined",
            actor=actor,
            workspace=invitation.workspace,
            obj=user,
            new={"role": invitation.role},
        )
    return membership


# -- API tokens ------------------------------------------------------------------------------

TOKEN_PREFIX = "mm_"  # noqa: S105 - a public marker, not a secret


@transaction.atomic
def do_create_api_token(workspace: Workspace, *, name: str, role: str, actor: Actor):
    """Returns (token, raw). The raw token is shown once and never stored."""
    name = (name or "").strip()
    if not name:
        raise ActionError("give the token a name, so you know later what uses it")
    if role not in Role.values:
        raise ActionError(f"unknown role {role!r}; choose one of {', '.join(Role.values)}")
    _require_owner_for({role}, workspace, actor)
    _require_may_own(workspace, role, actor)
    token, raw = _new_token(workspace, name, role, actor)
    audit("token.created", actor=actor, workspace=workspace, obj=token, new={"role": role})
    return token, raw


def _new_token(workspace: Workspace, name: str, role: str, actor: Actor) -> tuple[ApiToken, str]:
    raw = f"{TOKEN_PREFIX}{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        workspace=workspace,
        name=name[:100],
        role=role,
        prefix=raw[:10],
        key_hash=hash_token(raw),
        created_by=actor.user,
        # The command line acts for whoever runs the server: its tokens have no owner to lose.
        issued_by_operator=actor.user is None and actor.token is None,
    )
    return token, raw


def _require_may_own(workspace: Workspace, role: str, actor: Actor) -> None:
    """A staff member owns the tokens they make, which work only while their role holds the
    token's permissions (ApiToken.stopped_reason): refuse one that would not work at all."""
    if actor.user is None:
        return
    mine = _actor_role(workspace, actor)
    if mine is None or not permissions_for(role) <= permissions_for(mine):
        raise ActionError(
            f"your role ({mine or 'none'}) does not hold the permissions of the role {role}",
            code="forbidden",
        )


@transaction.atomic
def do_reissue_api_token(token: ApiToken, *, actor: Actor) -> tuple[ApiToken, str]:
    """A token that stopped working because of its owner (or any other, to take it over) made
    again under the acting user: a new secret with the same name and role, the old one revoked
    (its secret may be known to the person who left). Returns (token, raw) like creating."""
    if token.revoked_at:
        raise Conflict("a revoked token cannot be re-issued: create a new one")
    workspace = token.workspace
    _require_owner_for({token.role}, workspace, actor)
    _require_may_own(workspace, token.role, actor)
    old_owner = token.created_by.email if token.created_by else ""
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    new, raw = _new_token(workspace, token.name, token.role, actor)
    audit(
        "token.reissued",
        actor=actor,
        workspace=workspace,
        obj=new,
        old={"token": token.prefix, "owner": old_owner},
        new={"token": new.prefix, "owner": actor.label, "role": new.role},
    )
    return new, raw


@transaction.atomic
def do_revoke_api_token(token: ApiToken, *, actor: Actor) -> None:
    if token.revoked_at:
        return
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit("token.revoked", actor=actor, workspace=token.workspace, obj=token)


def touch_api_token(token: ApiToken) -> None:
    """Record use, at most once a minute per token, so reads do not turn into writes."""
    now = timezone.now()
    if token.last_used_at and now - token.last_used_at < timedelta(seconds=60):
        return
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    token.last_used_at = now
