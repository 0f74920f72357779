"""Request and response shapes of the campaign routes (campaigns, their ledger, /tx)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from ninja import Schema
from pydantic import Field, StrictBool, StrictInt, StrictStr

from .audience_schemas import ListRef, _Body
from .schemas import _Patch

BodyFormat = Literal["markdown", "html", "text"]
CampaignStatus = Literal[
    "draft", "scheduled", "running", "paused", "finished", "cancelled", "failed"
]
DeliveryStatus = Literal[
    "queued", "sending", "sent", "failed", "bounced", "skipped", "cancelled", "dead"
]
SkipReason = Literal["", "unsubscribed", "blocklisted", "excluded", "suppressed", "erased"]
Header = Annotated[list[StrictStr], Field(min_length=2, max_length=2)]  # [name, value]

_TEMPLATE = "A Jinja2 template (help: /app/help/campaign-templates/); checked when saved"


class CampaignIn(_Body):
    name: StrictStr = Field(min_length=1, max_length=200)
    subject: StrictStr = Field(min_length=1, max_length=500, description=_TEMPLATE)
    from_name: StrictStr = Field("", max_length=100, description="Default: the workspace's")
    from_email: StrictStr = Field("", description="Default: the workspace's sender address")
    reply_to: StrictStr = ""
    body_format: BodyFormat = "markdown"
    body: StrictStr = Field("", description=_TEMPLATE)
    text_body: StrictStr = Field("", description="Plain-text version; made from the HTML if empty")
    layout: StrictInt | None = Field(None, description="A layout's id; null: the default layout")
    lists: list[StrictInt | StrictStr] = Field([], description="Lists to send to, by id or slug")
    exclude_lists: list[StrictInt | StrictStr] = Field(
        [], description="Members of these lists are left out"
    )
    segment: StrictInt | None = Field(None, description="Only list members in this segment")
    exclude_segments: list[StrictInt] = Field([], description="People in these are left out")
    headers: list[Header] = Field([], description='Extra headers: [["X-Code", "a1"], ...]')
    archive: StrictBool = Field(False, description="Show on the public archive page")


class CampaignPatch(_Patch):
    name: StrictStr = Field(None, min_length=1, max_length=200)  # type: ignore[assignment]
    subject: StrictStr = Field(None, min_length=1, max_length=500)  # type: ignore[assignment]
    from_name: StrictStr = Field(None, max_length=100)  # type: ignore[assignment]
    from_email: StrictStr = None  # type: ignore[assignment]
    reply_to: StrictStr = None  # type: ignore[assignment]
    body_format: BodyFormat = None  # type: ignore[assignment]
    body: StrictStr = None  # type: ignore[assignment]
    text_body: StrictStr = None  # type: ignore[assignment]
    # null is a value for these two: back to the default layout, no segment.
    layout: StrictInt | None = None
    segment: StrictInt | None = None
    lists: list[StrictInt | StrictStr] = None  # type: ignore[assignment]
    exclude_lists: list[StrictInt | StrictStr] = None  # type: ignore[assignment]
    exclude_segments: list[StrictInt] = None  # type: ignore[assignment]
    headers: list[Header] = None  # type: ignore[assignment]
    archive: StrictBool = None  # type: ignore[assignment]


class AttachmentOut(Schema):
    id: int
    filename: str
    content_type: str
    size: int


class ProgressOut(Schema):
    counts: dict[str, int] = Field(description="Ledger rows by status")
    total: int
    sent: int = Field(description="Sent, bounced included (a bounce was sent first)")
    rate: float = Field(description="Messages a second over the last minute")
    eta_seconds: int | None = Field(description="At the current rate; null when unknown")
    planning_done: bool = Field(description="False while the audience is still being planned")


class CampaignSummary(Schema):
    id: str = Field(description="The campaign's uuid")
    name: str
    kind: Literal["marketing", "transactional"]
    status: CampaignStatus
    status_reason: str = Field(description="Why it is in this status, e.g. why it paused")
    subject: str
    lists: list[ListRef]
    sent: int
    total: int
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime


class CampaignOut(CampaignSummary):
    from_name: str
    from_email: str
    reply_to: str
    body_format: BodyFormat
    body: str
    text_body: str
    layout: int | None
    exclude_lists: list[ListRef]
    segment: int | None
    exclude_segments: list[int]
    headers: list[list[str]]
    archive: bool
    attachments: list[AttachmentOut]
    progress: ProgressOut | None = Field(description="Null until it starts")
    moves: list[str] = Field(
        description="What this campaign's status allows next, each a route "
        "(POST /campaigns/{id}/<move>): start, schedule, unschedule, pause, resume, cancel, retry"
    )
    updated_at: datetime


class CampaignPage(Schema):
    campaigns: list[CampaignSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )


class CampaignQuery(Schema):
    status: CampaignStatus | Literal[""] = ""
    kind: Literal["marketing", "transactional"] = "marketing"
    limit: int = Field(50, ge=1, le=200)
    cursor: str = Field("", description="`next_cursor` of the previous page")


class ScheduleIn(_Body):
    at: StrictStr = Field(
        description="ISO 8601 date and time; without an offset it is read in the workspace's "
        "time zone (2026-12-01T09:00)"
    )


class TestIn(_Body):
    to: list[StrictStr] = Field(min_length=1, description="Staff addresses, at most 10")
    subscriber: StrictStr | None = Field(
        None,
        description="Render as this subscriber (uuid); needs audience.view_personal_data. "
        "Default: sample data",
    )


class TestOut(Schema):
    recipients: int = Field(description="How many addresses it went to (duplicates once)")
    subject: str = Field(description="The subject as rendered, before the [Test] mark")


class RetryOut(Schema):
    requeued: int
    campaign: CampaignOut


class DeliveryRecipient(Schema):
    id: str | None = Field(description="The subscriber's uuid; null once they were erased")
    email: str | None = Field(description="Masked without audience.view_personal_data")


class DeliveryOut(Schema):
    id: int
    recipient: DeliveryRecipient
    status: DeliveryStatus
    attempts: int
    sent_at: datetime | None
    smtp_reply: str = Field(description="What the receiving server said, as it said it")
    skip_reason: SkipReason = Field(
        description="Why a skipped row was not sent (checked at send time); empty otherwise"
    )
    server: str | None = Field(description="The relay's name; null for the outbox")
    message_id: str


class DeliveryPage(Schema):
    deliveries: list[DeliveryOut]
    next_cursor: str | None


class DeliveryQuery(Schema):
    status: DeliveryStatus | Literal[""] = ""
    limit: int = Field(50, ge=1, le=500)
    cursor: str = Field("", description="`next_cursor` of the previous page")


class TransactionalIn(_Body):
    to: StrictStr | None = Field(
        None,
        description="The recipient's address. Someone who is not a subscriber yet gets a "
        "subscriber record on no list, marked as created by transactional mail: no marketing "
        "consent is implied or recorded",
    )
    subscriber: StrictStr | None = Field(None, description="Or the subscriber's uuid")
    subject: StrictStr = Field(min_length=1, max_length=500, description=_TEMPLATE)
    body: StrictStr = Field(description=_TEMPLATE)
    body_format: BodyFormat = "markdown"
    text_body: StrictStr = ""
    from_name: StrictStr = Field("", max_length=100)
    from_email: StrictStr = ""
    reply_to: StrictStr = ""
    layout: StrictInt | None = None
    data: dict[str, Any] | None = Field(
        None, description="Values the templates see as {{ data.* }} (at most 64 KB as JSON)"
    )


class TransactionalOut(Schema):
    campaign: str = Field(description="The uuid of the one-message campaign carrying it")
    delivery: int = Field(description="Its ledger row (GET /campaigns/{campaign}/deliveries)")
    status: str
