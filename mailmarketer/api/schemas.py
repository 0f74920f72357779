"""Request and response shapes of the API (they are also its OpenAPI schema)."""

from __future__ import annotations

from ninja import Schema
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr


class FieldError(Schema):
    field: str = Field(description="The offending field, dotted for nested ones; '' for the whole")
    message: str


class Error(Schema):
    code: str = Field(description="Stable, machine-readable: not_found, forbidden, ...")
    message: str = Field(description="What went wrong, for people")
    errors: list[FieldError] | None = Field(None, description="Per-field problems (422 only)")


class WorkspaceRef(Schema):
    slug: str
    name: str


class TokenRef(Schema):
    name: str
    prefix: str = Field(description="The token's first characters, to tell tokens apart")
    role: str


class Me(Schema):
    workspace: WorkspaceRef
    token: TokenRef
    permissions: list[str] = Field(description="What this token may do, sorted")


class Privacy(Schema):
    consent_store_ip: bool = Field(
        description="Whether consent records keep the person's IP address and user agent"
    )
    tracking_mode: str = Field(
        description="Email opens and clicks: identified, anonymous or off (/app/help/tracking/)"
    )
    tracking_requires_consent: bool = Field(
        description="Identified tracking only of people with a tracking consent"
    )


class WorkspaceOut(Schema):
    slug: str
    name: str
    sender_name: str
    sender_email: str
    postal_address: str
    timezone: str
    require_2fa: bool
    privacy: Privacy


class _Patch(BaseModel):
    # Unknown fields are an error (a typo must not be silently ignored), and types are strict:
    # "false" is not a boolean. Fields left out are left unchanged; null is not a value here.
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


class PrivacyPatch(_Patch):
    consent_store_ip: StrictBool = None  # type: ignore[assignment]
    tracking_mode: StrictStr = None  # type: ignore[assignment]
    tracking_requires_consent: StrictBool = None  # type: ignore[assignment]


class WorkspacePatch(_Patch):
    name: StrictStr = Field(None, max_length=100)  # type: ignore[assignment]
    sender_name: StrictStr = Field(None, max_length=100)  # type: ignore[assignment]
    sender_email: StrictStr = Field(None, description="Default sender address")  # type: ignore[assignment]
    postal_address: StrictStr = Field(  # type: ignore[assignment]
        None, description="Printed in the footer of marketing mail; required to send campaigns"
    )
    timezone: StrictStr = Field(None, description="IANA name, e.g. Europe/Berlin")  # type: ignore[assignment]
    require_2fa: StrictBool = Field(  # type: ignore[assignment]
        None, description="Require two-factor authentication of roles that see personal data"
    )
    privacy: PrivacyPatch = None  # type: ignore[assignment]
