"""Who is acting: a staff user, an API token, or the system itself (a job, the CLI)."""

from __future__ import annotations

from dataclasses import dataclass

from mailmarketer.lib.http import client_ip


@dataclass(frozen=True)
class Actor:
    user: object | None = None  # accounts.User
    token: object | None = None  # accounts.ApiToken
    ip: str | None = None
    label: str = "system"

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(label=label)

    @classmethod
    def for_user(cls, user, ip: str | None = None) -> Actor:
        return cls(user=user, ip=ip, label=user.email)

    @classmethod
    def for_token(cls, token, ip: str | None = None) -> Actor:
        return cls(token=token, ip=ip, label=f"API token {token.name} ({token.prefix}…)")

    @classmethod
    def from_request(cls, request) -> Actor:
        ip = client_ip(request)
        token = getattr(request, "api_token", None)
        if token is not None:
            return cls.for_token(token, ip)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return cls.for_user(user, ip)
        return cls(ip=ip, label="anonymous")
