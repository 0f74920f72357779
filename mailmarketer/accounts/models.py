"""Accounts models. Writes go through actions.py; reads through queries.py."""

from __future__ import annotations

import hashlib
import secrets
import zoneinfo

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils.crypto import salted_hmac
from django.utils.timezone import now
from django_otp.models import Device, ThrottlingMixin
from django_otp.oath import TOTP

from mailmarketer.lib.crypto import EncryptedTextField
from mailmarketer.lib.text import refuse_controls

from .permissions import Role, permissions_for


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a known time zone (for example Europe/Berlin)")


slug_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$",
    "Use 1-50 lower-case letters, digits and hyphens, not starting or ending with a hyphen.",
)

# Pages of the shell under /app/<name>/ that are not a workspace (web/urls.py): a workspace
# with one of these addresses could never open its dashboard.
RESERVED_WORKSPACE_SLUGS = frozenset({"help", "switch"})


class TrackingMode(models.TextChoices):
    IDENTIFIED = "identified", "Identified (linked to the person)"
    ANONYMOUS = "anonymous", "Anonymous (counts only)"
    OFF = "off", "Off (no tracked links, no open pixel)"


class Workspace(models.Model):
    """The tenant. Every model holding customer data has a workspace foreign key."""

    name = models.CharField(max_length=100)
    slug = models.CharField(max_length=50, unique=True, validators=[slug_validator])
    sender_name = models.CharField(max_length=100, blank=True)
    sender_email = models.EmailField(blank=True)
    # Marketing mail must carry the sender's postal address (CAN-SPAM, and most ESP rules);
    # campaigns refuse to start while it is empty.
    postal_address = models.TextField(blank=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    # When on, members whose role may see personal data must use two-factor authentication.
    require_2fa = models.BooleanField(default=False)
    # Privacy: whether consent records keep the IP address and user agent of the person.
    consent_store_ip = models.BooleanField(default=True)
    # Email tracking (tracking/docs): identified (opens and clicks linked to the person),
    # anonymous (counts only) or off (links not rewritten, no pixel); a campaign may override.
    tracking_mode = models.CharField(
        max_length=10, choices=TrackingMode.choices, default=TrackingMode.IDENTIFIED
    )
    # When on, identified tracking of a person needs their tracking consent; without it they
    # are counted anonymously.
    tracking_requires_consent = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=now)

    def __str__(self):
        return self.name

    def clean(self):
        # The sender's name and address go into the From header of every message.
        refuse_controls(
            {"name": self.name, "sender_name": self.sender_name, "sender_email": self.sender_email},
            {"postal_address": self.postal_address},
        )


class UserManager(BaseUserManager):
    use_in_migrations = True

    @classmethod
    def normalize_email(cls, email):
        # Staff addresses are matched case-insensitively as a whole: a login is not the place
        # for RFC 5321's case-sensitive local parts.
        return (email or "").strip().lower()

    def create_user(self, email, password=None, **extra):
        user = self.model(email=self.normalize_email(email), **extra)
        user.set_password(password)  # None gives an unusable password
        user.save(using=self._db)
        return user

    def get_by_natural_key(self, username):
        return self.get(email=self.normalize_email(username))


def _new_stamp() -> str:
    return secrets.token_hex(16)


class User(AbstractBaseUser):
    """A staff member. Logs in with an email address; belongs to workspaces through memberships."""

    email = models.EmailField(unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=now)
    # Part of the session hash: changing it (2FA added or removed) ends every other session,
    # the way a password change does.
    security_stamp = models.CharField(max_length=32, default=_new_stamp)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["name"]

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    def __str__(self):
        return self.email

    def clean(self):
        self.email = User.objects.normalize_email(self.email)

    def _get_session_auth_hash(self, secret=None):
        return salted_hmac(
            "mailmarketer.accounts.User.session",
            f"{self.password}:{self.security_stamp}",
            secret=secret,
            algorithm="sha256",
        ).hexdigest()

    def get_session_auth_hash(self):
        return self._get_session_auth_hash()

    def get_session_auth_fallback_hash(self):
        from django.conf import settings

        for fallback_secret in settings.SECRET_KEY_FALLBACKS:
            yield self._get_session_auth_hash(secret=fallback_secret)

    @property
    def display_name(self):
        return self.name or self.email


class Membership(models.Model):
    """A user's role in one workspace."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "workspace"], name="membership_unique")
        ]

    def __str__(self):
        return f"{self.user} in {self.workspace} as {self.role}"

    @property
    def permissions(self) -> frozenset[str]:
        return permissions_for(self.role)

    def has(self, permission: str) -> bool:
        return permission in self.permissions


class Invitation(models.Model):
    """An invitation to join a workspace with a role.

    The link carries a signed (id, nonce) pair; it expires, and it works once: accepting sets
    accepted_at, and a revoked or accepted invitation refuses the link.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices)
    invited_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    nonce = models.CharField(max_length=32, default=_new_stamp)
    created_at = models.DateTimeField(default=now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"invitation of {self.email} to {self.workspace}"

    @property
    def is_open(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > now()


def hash_token(raw: str) -> str:
    # API tokens are 32 random bytes: a fast hash is enough (nothing to brute-force), and a
    # lookup by hash keeps authentication one indexed query.
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A bearer token for the REST API, scoped to one workspace and one role.

    A token made by a staff member is theirs (`created_by`, its owner) and works only while
    they could make it again: their account is active, they are still a member of the
    workspace, and their role there holds every permission of the token's role (a marketer's
    token survives a promotion to admin, not a demotion to analyst). When the owner's account is
    deleted `created_by` becomes empty and the token stops too. Tokens made from the command line
    (`issued_by_operator`) belong to whoever runs the server and have no such owner. A token
    that stopped can be re-issued (a new secret, the same name and role) by someone who may make
    it: accounts.actions.do_reissue_api_token.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    role = models.CharField(max_length=16, choices=Role.choices)
    prefix = models.CharField(max_length=12, help_text="Shown to tell tokens apart")
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    issued_by_operator = models.BooleanField(
        default=False, help_text="Made from the command line: no staff member owns it"
    )

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    def stopped_reason(self, owner_role: str | None) -> str:
        """Why this unrevoked token no longer works ("" when it does), given its owner's role
        in the workspace now (None when they are not a member)."""
        if self.issued_by_operator:
            return ""
        owner = self.created_by
        if owner is None:
            return "its owner's account was deleted"
        if not owner.is_active:
            return "its owner's account is deactivated"
        if owner_role is None:
            return "its owner is no longer a member of the workspace"
        if not self.permissions <= permissions_for(owner_role):
            return f"its owner's role ({owner_role}) no longer holds the permissions of its own"
        return ""

    @property
    def permissions(self) -> frozenset[str]:
        return permissions_for(self.role)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class TotpDevice(ThrottlingMixin, Device):
    """A TOTP authenticator app. Like django-otp's own TOTPDevice, but the seed is encrypted
    at rest (theirs is a plain hex column), and a code is accepted once only."""

    key = EncryptedTextField(help_text="Hex-encoded seed")
    step = models.PositiveSmallIntegerField(default=30)
    digits = models.PositiveSmallIntegerField(default=6)
    tolerance = models.PositiveSmallIntegerField(default=1)
    # The time step of the last accepted code: a code from that step or earlier is a replay.
    last_t = models.BigIntegerField(default=-1)

    def get_throttle_factor(self):
        return 1

    @property
    def bin_key(self) -> bytes:
        return bytes.fromhex(self.key)

    def config_url(self) -> str:
        import base64
        from urllib.parse import quote, urlencode

        from django.conf import settings

        secret = base64.b32encode(self.bin_key).decode().rstrip("=")
        label = quote(f"{settings.OTP_TOTP_ISSUER}:{self.user.email}")
        query = urlencode(
            {
                "secret": secret,
                "issuer": settings.OTP_TOTP_ISSUER,
                "digits": self.digits,
                "period": self.step,
                "algorithm": "SHA1",
            }
        )
        return f"otpauth://totp/{label}?{query}"

    def verify_token(self, token) -> bool:
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        token = str(token).strip().replace(" ", "")
        if not token.isdigit() or len(token) != self.digits:
            self.throttle_increment()
            return False
        totp = TOTP(self.bin_key, self.step, 0, self.digits, 0)
        if totp.verify(int(token), self.tolerance, self.last_t + 1):
            self.last_t = totp.t()
            self.throttling_failure_count = 0
            self.throttling_failure_timestamp = None
            self.save(
                update_fields=["last_t", "throttling_failure_count", "throttling_failure_timestamp"]
            )
            return True
        self.throttle_increment()
        return False


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("the audit log is append-only")

    def delete(self):
        raise PermissionError("the audit log is append-only")

    def bulk_update(self, *args, **kwargs):
        raise PermissionError("the audit log is append-only")


class AuditEvent(models.Model):
    """One row per admin change, login, failed login, personal-data look, export or token use.

    Append-only. Foreign keys have no database constraint and no cascade, so deleting a user or
    a workspace never has to touch (and could never touch) its audit trail.
    """

    at = models.DateTimeField(default=now, db_index=True)
    workspace = models.ForeignKey(
        Workspace, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    actor_user = models.ForeignKey(
        User, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    actor_token = models.ForeignKey(
        ApiToken, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    # Who it was at the time, kept as text so the row still reads right after a rename.
    actor_label = models.CharField(max_length=200, blank=True)
    event = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    old = models.JSONField(null=True, blank=True)
    new = models.JSONField(null=True, blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["workspace", "-at"], name="audit_ws_at")]
        ordering = ["-at", "-id"]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_label} {self.event}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("the audit log is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("the audit log is append-only")


RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
RECOVERY_LENGTH = 10  # ~49 bits each: far beyond guessing within the sign-in throttle


def normalise_recovery_code(text: str) -> str | None:
    """The code as stored (lower case, no spaces or dashes), or None if it cannot be one."""
    code = text.strip().lower().replace(" ", "").replace("-", "")
    if len(code) != RECOVERY_LENGTH or any(c not in RECOVERY_ALPHABET for c in code):
        return None
    return code


def hash_recovery_code(user_id: int, code: str) -> str:
    # Random codes, like API tokens: a fast hash is enough; the user id keeps two people's
    # equal codes (never expected) from sharing a row's meaning.
    return hashlib.sha256(f"{user_id}:{code}".encode()).hexdigest()


class RecoveryCode(models.Model):
    """One of the ten single-use codes given when two-factor authentication is set up, for the
    day the phone is lost. Stored hashed; shown once; each use audited; making new ones
    replaces all the old; turning two-factor off deletes them."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=now)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "code_hash"], name="accounts_recovery_once"),
        ]

    def __str__(self):
        return f"recovery code of user {self.user_id}"
