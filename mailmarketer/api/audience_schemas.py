"""Request and response shapes of the audience routes (subscribers, lists, bulk add)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from ninja import Schema
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr
from pydantic_core import PydanticCustomError

from .schemas import _Patch

ATTRIBUTE_NAME_MAX = 100  # as audience.actions._clean_attributes allows


def _attribute_names(attributes: dict[str, Any]) -> dict[str, Any]:
    # PydanticCustomError rather than ValueError: its message is sent as written, without
    # pydantic's "Value error, " in front.
    for name in attributes:
        if not name.strip():
            raise PydanticCustomError("attribute_name", "attribute names cannot be blank")
        if len(name) > ATTRIBUTE_NAME_MAX:
            raise PydanticCustomError(
                "attribute_name",
                "attribute name {name!r}… is longer than {limit} characters",
                {"name": name[:20], "limit": ATTRIBUTE_NAME_MAX},
            )
    return attributes


Attributes = Annotated[
    dict[str, Any],
    AfterValidator(_attribute_names),
    Field(description='Names to any JSON values, e.g. {"city": "Oslo", "age": 31}'),
]
SubscriptionStatus = Literal["confirmed", "unconfirmed"]


class _Body(BaseModel):
    # As in _Patch: unknown fields are an error and types are strict, but fields may have
    # defaults and required ones must be sent.
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


# -- subscribers -----------------------------------------------------------------------------


class ConsentIn(_Body):
    notice_text: StrictStr = Field(
        min_length=1,
        description="The exact consent wording the person agreed to; kept, versioned, with "
        "every subscription this request makes",
    )
    notice_name: StrictStr = Field(
        "API",
        min_length=1,
        max_length=150,
        description="Where the wording was shown, e.g. 'Webshop checkout'",
    )


class SubscriberIn(_Body):
    email: StrictStr
    name: StrictStr = Field(
        "", max_length=200, description="The name shown; default: first and last name joined"
    )
    first_name: StrictStr = Field("", max_length=100)
    last_name: StrictStr = Field("", max_length=100)
    attributes: Attributes = {}
    lists: list[StrictInt | StrictStr] = Field(
        [], description="Lists to subscribe to, by id or slug"
    )
    status: SubscriptionStatus | None = Field(
        None,
        description="Status of the new subscriptions; default: each list's opt-in (single: "
        "confirmed, double: unconfirmed)",
    )
    consent: ConsentIn | None = Field(
        None, description="Required when any subscription would be confirmed"
    )


class SubscriberPatch(_Patch):
    email: StrictStr = None  # type: ignore[assignment]
    name: StrictStr = Field(None, max_length=200)  # type: ignore[assignment]
    first_name: StrictStr = Field(  # type: ignore[assignment]
        None,
        max_length=100,
        description="Without `name`, a new first or last name makes the name shown anew",
    )
    last_name: StrictStr = Field(None, max_length=100)  # type: ignore[assignment]
    attributes: Attributes = None  # type: ignore[assignment]
    attributes_mode: Literal["merge", "replace"] = Field(  # type: ignore[assignment]
        None,
        description="merge (default): the names sent are set, the others kept; replace: the "
        "attributes become exactly those sent",
    )
    status: Literal["enabled", "blocklisted"] = Field(  # type: ignore[assignment]
        None,
        description="blocklisted unsubscribes from every list; enabled lifts the block (the "
        "subscriptions stay unsubscribed)",
    )


class SubscriberQuery(Schema):
    q: str = Field("", description="Part of the email address or name")
    list: str = Field("", description="Members of this list (id or slug)")
    subscription_status: Literal["", "confirmed", "unconfirmed", "unsubscribed"] = Field(
        "", description="With `list`: members with this status there"
    )
    status: Literal["", "enabled", "blocklisted"] = ""
    created_after: datetime | None = Field(None, description="ISO 8601; without a zone, UTC")
    created_before: datetime | None = Field(None, description="ISO 8601; without a zone, UTC")
    limit: int = Field(50, ge=1, le=500)
    cursor: str = Field("", description="`next_cursor` of the previous page")


class ListRef(Schema):
    id: int
    slug: str
    name: str


class SubscriptionOut(Schema):
    list: ListRef
    status: str
    status_reason: str
    created_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None


class NoticeOut(Schema):
    name: str
    version: int
    text: str
    sha256: str


class ConsentOut(Schema):
    at: datetime
    purpose: str = Field(description="email:<list slug> or tracking")
    action: str = Field(description="grant, confirm or withdraw")
    notice: NoticeOut | None
    source_type: str
    source_label: str
    ip: str | None
    user_agent: str
    confirmed_at: datetime | None


class SubscriberOut(Schema):
    id: str = Field(description="The subscriber's uuid")
    email: str = Field(description="Masked (j•••@example.com) without view_personal_data")
    name: str = Field(description="••• without view_personal_data")
    first_name: str = Field(description="••• without view_personal_data (when not empty)")
    last_name: str = Field(description="••• without view_personal_data (when not empty)")
    status: str
    source: str
    attributes: dict[str, Any] = Field(description="Values ••• without view_personal_data")
    created_at: datetime
    updated_at: datetime
    masked: bool


class SubscriberDetail(SubscriberOut):
    subscriptions: list[SubscriptionOut]
    consent: list[ConsentOut] | None = Field(
        description="The consent ledger, oldest first; null without view_personal_data"
    )


class SubscriberPage(Schema):
    subscribers: list[SubscriberOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )


# -- lists -----------------------------------------------------------------------------------


Visibility = Literal["public", "private"]
OptIn = Literal["single", "double"]


class ListIn(_Body):
    name: StrictStr = Field(min_length=1, max_length=150)
    slug: StrictStr = Field(description="1-50 lower-case letters, digits and hyphens")
    description: StrictStr = ""
    visibility: Visibility = "private"
    optin: OptIn = "single"
    tags: list[StrictStr] = []


class ListPatch(_Patch):
    name: StrictStr = Field(None, min_length=1, max_length=150)  # type: ignore[assignment]
    slug: StrictStr = None  # type: ignore[assignment]
    description: StrictStr = None  # type: ignore[assignment]
    visibility: Visibility = None  # type: ignore[assignment]
    optin: OptIn = None  # type: ignore[assignment]
    tags: list[StrictStr] = None  # type: ignore[assignment]


class ListCounts(Schema):
    confirmed: int
    unconfirmed: int
    unsubscribed: int


class ListOut(Schema):
    id: int
    name: str
    slug: str
    description: str
    visibility: str
    optin: str
    tags: list[str]
    created_at: datetime
    counts: ListCounts = Field(description="Members by subscription status")


class ListsOut(Schema):
    lists: list[ListOut]


class BulkAddIn(_Body):
    subscribers: list[Any] = Field(
        description="Up to 10,000 objects {email, name?, first_name?, last_name?, attributes?}; "
        "each is judged on its "
        "own, so a bad one is reported and never fails the others"
    )
    status: SubscriptionStatus | None = Field(
        None, description="Status of new memberships; default: the list's opt-in"
    )
    notice_text: StrictStr | None = Field(
        None, min_length=1, description="Required when the memberships would be confirmed"
    )
    notice_name: StrictStr = Field("API", min_length=1, max_length=150)


class BulkAddItem(Schema):
    index: int = Field(description="Position of the item in the request, from 0")
    result: str = Field(
        description="created, subscribed, already, unsubscribed_kept, suppressed, blocklisted "
        "or invalid"
    )
    id: str | None = Field(description="The subscriber's uuid, where there is one")
    status: str | None = Field(description="The membership's status afterwards")
    reason: str | None = Field(description="Why, for invalid, suppressed and blocklisted")


class BulkAddOut(Schema):
    list: ListRef
    status: str = Field(description="The status given to new memberships")
    counts: dict[str, int] = Field(description="Items per result")
    results: list[BulkAddItem]


# -- segments --------------------------------------------------------------------------------


class SegmentIn(_Body):
    name: StrictStr = Field(min_length=1, max_length=150)
    description: StrictStr = Field("", max_length=2000)
    rules: dict[str, Any] = Field(
        description='The rule tree: {"version": 1, "root": {"type": "group", "match": "all", '
        '"children": [...]}}; see /app/help/api/ for the conditions'
    )


class SegmentOut(Schema):
    id: int
    name: str
    description: str
    rules: dict[str, Any] = Field(
        description="As stored; without view_personal_data, values that single out a person "
        "(an address, a name) are masked"
    )
    created_at: datetime
    updated_at: datetime


class SegmentsOut(Schema):
    segments: list[SegmentOut]


class SegmentCount(Schema):
    id: int
    count: int = Field(description="Subscribers matching the rules now")


# -- imports ---------------------------------------------------------------------------------


class ImportForm(Schema):
    mode: Literal["subscribe", "update", "blocklist"] = Field(
        "subscribe",
        description="subscribe: add people and subscribe them to `lists`; update: change "
        "existing subscribers only; blocklist: blocklist the addresses",
    )
    lists: str = Field("", description="subscribe: lists by id or slug, comma-separated")
    status: SubscriptionStatus = Field(
        "unconfirmed", description="subscribe: status of the new memberships"
    )
    notice_text: str = Field(
        "", description="The consent wording the people agreed to; required for confirmed"
    )
    attribute_mode: Literal["merge", "overwrite"] = Field(
        "merge", description="update: merge the file's attributes into or overwrite the old"
    )
    email_column: str = Field(
        "", description="Header name or 1-based number; default: found by name or content"
    )
    name_column: str = Field("", description="Header name or 1-based number; default: by name")


class ImportOut(Schema):
    id: int
    status: str = Field(description="draft, queued, running, finished, failed or cancelled")
    phase: str = Field(description="The status, or `checking` while the file is read once")
    file_name: str
    mode: str
    encoding: str
    delimiter: str
    rows_total: int = Field(description="An estimate until rows_total_exact")
    rows_total_exact: bool
    rows_done: int
    percent: float
    created: int
    updated: int
    unchanged: int
    skipped: int = Field(description="Rows not imported (in the error report)")
    skipped_reasons: dict[str, int]
    rate: float | None = Field(description="Rows a second")
    eta_seconds: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str = Field(description="Why the file as a whole failed, if it did")
    has_error_report: bool
    active: bool
