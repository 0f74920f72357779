"""/leads: evaluation requests (docs/leads.md), and /resources: what resource forms give.

Reading leads needs `leads.view`; changing status, assignee or notes `leads.manage` (through
signup.leads.do_update_lead, the one writer: a status only along its transitions). Leads come
newest first in keyset pages with filters. Without `audience.view_personal_data` the address is
masked and the name, message and notes are null; an unmasked answer is audited. Resources (with
download counts) need `forms.view`; uploading one (`POST /resources`, multipart) `forms.manage`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from django.conf import settings
from django.core import signing
from django.http import Http404
from ninja import File, Form, Query, Router, Schema
from ninja import Status as Answer
from ninja.files import UploadedFile
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience.emails import mask_email
from mailmarketer.signup import leads, resources
from mailmarketer.signup import queries_leads as lq
from mailmarketer.signup import queries_resources as rq
from mailmarketer.signup.fields import FormError

from .access import require
from .errors import READ_ERRORS, WRITE_ERRORS, ApiError, FieldErrors
from .schemas import Error

router = Router(tags=["leads"])
CURSOR_SALT = "mailmarketer.api.leads.cursor"
Status = Literal["new", "contacted", "qualified", "disqualified"]


class LeadEventOut(Schema):
    at: datetime
    actor: str
    field: str
    old: str | None = Field(description="null for masked notes")
    new: str | None


class LeadOut(Schema):
    id: int
    created_at: datetime
    updated_at: datetime
    status: str
    product: str
    company: str
    form: int | None
    subscriber: str = Field(description="the subscriber's uuid")
    email: str = Field(description="masked without audience.view_personal_data")
    name: str | None = Field(description="null without audience.view_personal_data")
    message: str | None = Field(description="null without audience.view_personal_data")
    notes: str | None = Field(description="null without audience.view_personal_data")
    assignee: int | None = Field(description="the assigned member's user id")
    assignee_email: str | None


class LeadDetailOut(LeadOut):
    history: list[LeadEventOut]


class LeadPage(Schema):
    leads: list[LeadOut]
    next_cursor: str | None


class LeadQuery(Schema):
    status: Status | None = None
    assignee: StrictStr | None = Field(None, description="a user id, or none for unassigned")
    product: str | None = Field(None, max_length=200)
    since: date | None = Field(None, description="created on or after this UTC day")
    until: date | None = Field(None, description="created on or before this UTC day")
    cursor: str | None = None
    limit: int = Field(50, ge=1, le=500)


class LeadPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    status: Status = Field(None, description="new -> contacted -> qualified | disqualified")  # type: ignore[assignment]
    assignee: StrictInt | None = Field(None, description="a member's user id, null: nobody")
    notes: StrictStr = Field(None, max_length=10000)  # type: ignore[assignment]


class ResourceOut(Schema):
    id: int
    title: str
    filename: str
    content_type: str
    size: int
    external_url: str
    link_days: int
    downloads: int
    people: int = Field(description="distinct people who downloaded it")
    created_at: datetime


class ResourcesOut(Schema):
    resources: list[ResourceOut]


def _reveal(request) -> bool:
    return p.VIEW_PERSONAL_DATA in request.api_token.permissions


def lead_out(lead, *, reveal: bool) -> dict:
    subscriber = lead.subscriber
    name = subscriber.name or (lead.submission.name if lead.submission_id else "")
    return {
        "id": lead.pk,
        "created_at": lead.created_at,
        "updated_at": lead.updated_at,
        "status": lead.status,
        "product": lead.product,
        "company": lead.company,
        "form": lead.form_id,
        "subscriber": str(subscriber.uuid),
        "email": subscriber.email if reveal else mask_email(subscriber.email),
        "name": name if reveal else None,
        "message": lead.message if reveal else None,
        "notes": lead.notes if reveal else None,
        "assignee": lead.assignee_id,
        "assignee_email": lead.assignee.email if lead.assignee else None,
    }


def _detail(request, lead) -> dict:
    reveal = _reveal(request)
    if reveal:
        leads.record_lead_viewed(lead, actor=Actor.from_request(request))
    history = []
    for event in lq.history(lead):
        masked = event.field == "notes" and not reveal
        history.append(
            {
                "at": event.at,
                "actor": event.actor,
                "field": event.field,
                "old": None if masked else event.old,
                "new": None if masked else event.new,
            }
        )
    return {**lead_out(lead, reveal=reveal), "history": history}


def lead_or_404(request, lead_id: int):
    lead = lq.get_lead(request.workspace, lead_id)
    if lead is None:
        raise Http404("no such lead in this workspace")
    return lead


def _before(raw: str) -> int:
    try:
        before = signing.Signer(salt=CURSOR_SALT).unsign_object(raw)["before"]
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        before = None
    if not isinstance(before, int):
        raise FieldErrors(
            [{"field": "cursor", "message": "not a cursor this API gave out: pass next_cursor"}]
        )
    return before


@router.get("/leads", response={200: LeadPage, **READ_ERRORS}, summary="Leads")
@require(p.LEADS_VIEW)
def all_leads(request, filters: Query[LeadQuery]):
    """Newest first, `limit` per page (1-500, default 50); pass `next_cursor` back as `cursor`
    with the same filters."""
    assignee = filters.assignee or ""
    if assignee and assignee != "none" and not assignee.isdigit():
        raise FieldErrors([{"field": "assignee", "message": "a user id, or none"}])
    qs = lq.leads_for(
        request.workspace,
        lq.LeadFilters(
            status=filters.status or "",
            assignee=assignee,
            product=filters.product or "",
            since=filters.since,
            until=filters.until,
        ),
    ).select_related("submission")
    if filters.cursor:
        qs = qs.filter(pk__lt=_before(filters.cursor))
    rows = list(qs[: filters.limit + 1])
    page, more = rows[: filters.limit], len(rows) > filters.limit
    reveal = _reveal(request)
    if reveal:
        leads.record_leads_listed(request.workspace, len(page), actor=Actor.from_request(request))
    cursor = signing.Signer(salt=CURSOR_SALT).sign_object({"before": page[-1].pk}) if more else None
    return {"leads": [lead_out(lead, reveal=reveal) for lead in page], "next_cursor": cursor}


@router.get("/leads/{lead_id}", response={200: LeadDetailOut, **READ_ERRORS}, summary="A lead")
@require(p.LEADS_VIEW)
def get_lead(request, lead_id: int):
    """The lead with its history: each change, who made it and when."""
    return _detail(request, lead_or_404(request, lead_id))


@router.patch(
    "/leads/{lead_id}", response={200: LeadDetailOut, **WRITE_ERRORS}, summary="Change a lead"
)
@require(p.LEADS_MANAGE)
def patch_lead(request, lead_id: int, payload: LeadPatch):
    """Send only what changes: `status` (only new -> contacted or disqualified, contacted ->
    qualified or disqualified; 422 otherwise), `assignee` (a member's user id, or null), `notes`
    (which only a token that may see personal data may replace)."""
    lead = lead_or_404(request, lead_id)
    changes = payload.model_dump(exclude_unset=True)
    if "notes" in changes and not _reveal(request):
        raise FieldErrors(
            [{"field": "notes", "message": "notes need audience.view_personal_data to change"}]
        )
    try:
        leads.do_update_lead(
            lead,
            status=changes.get("status"),
            assignee=changes.get("assignee", leads.UNSET),
            notes=changes.get("notes"),
            actor=Actor.from_request(request),
        )
    except FormError as exc:
        raise FieldErrors([{"field": exc.field, "message": str(exc)}]) from exc
    return _detail(request, lead_or_404(request, lead_id))


@router.get("/resources", response={200: ResourcesOut, **READ_ERRORS}, summary="Resources")
@require(p.FORMS_VIEW)
def all_resources(request):
    """What resource forms give, with how often each was downloaded and by how many people."""
    return {
        "resources": [
            {
                **{
                    k: getattr(r, k)
                    for k in (
                        "id",
                        "title",
                        "filename",
                        "content_type",
                        "size",
                        "external_url",
                        "link_days",
                        "created_at",
                    )
                },
                "downloads": r.download_count,
                "people": r.people_count,
            }
            for r in rq.resources_with_counts(request.workspace)
        ]
    }


class ResourceIn(Schema):
    title: str = Field(description="what the form and the delivery mail call it")
    external_url: str = Field(
        "", description="an https URL to send people to instead of a file (one of the two)"
    )
    link_days: int = Field(
        resources.DEFAULT_LINK_DAYS, description="how long a download link works, in days"
    )


def _resource_out(resource) -> dict:
    return {
        **{
            k: getattr(resource, k)
            for k in (
                "id",
                "title",
                "filename",
                "content_type",
                "size",
                "external_url",
                "link_days",
                "created_at",
            )
        },
        "downloads": getattr(resource, "download_count", 0),
        "people": getattr(resource, "people_count", 0),
    }


@router.post(
    "/resources",
    response={201: ResourceOut, **WRITE_ERRORS, 413: Error},
    summary="Upload a resource",
)
@require(p.FORMS_MANAGE)
def create_resource(request, form: Form[ResourceIn], file: File[UploadedFile] = None):
    """A multipart upload: `file` (PDF, ZIP, EPUB, PNG, JPEG or UTF-8 text, told by its
    content, not its name; at most MM_RESOURCE_MAX_MB, 413 beyond) or `external_url`, one of
    them, with a `title`. The same checks as the staff page (signup.resources, the one
    writer); a refused file leaves nothing behind. Bind it to a resource form with
    `PUT /forms/{form_id}/resource`."""
    limit = settings.RESOURCE_MAX_BYTES
    if file is not None and file.size and file.size > limit:
        raise ApiError(413, f"file: at most {limit // (1024 * 1024)} MB", code="too_large")
    try:
        resource = resources.do_create_resource(
            request.workspace,
            title=form.title,
            upload=file,
            external_url=form.external_url,
            link_days=form.link_days,
            actor=Actor.from_request(request),
        )
    except FormError as exc:
        raise FieldErrors([{"field": exc.field, "message": str(exc)}]) from exc
    return Answer(201, _resource_out(resource))


class EvaluationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    products: list[StrictStr] = Field(description="the products or plans offered, 1 to 30")
    assignee: StrictInt | None = Field(None, description="the member new leads go to")
    recipients: list[StrictInt] = Field(
        [], description="members mailed about unassigned new leads (none: owners and admins)"
    )


class EvaluationOut(Schema):
    form: int
    products: list[str]
    assignee: int | None
    recipients: list[int]


class ResourceChoiceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    resource: StrictInt = Field(description="the id of one of the workspace's resources")


class ResourceChoiceOut(Schema):
    form: int
    resource: int


def _form_of_kind(request, form_id: str, kind: str):
    from .forms import form_or_404

    form = form_or_404(request, form_id)
    if form.kind != kind:
        raise FieldErrors([{"field": "kind", "message": f"this is not a {kind} form"}])
    return form


@router.put(
    "/forms/{form_id}/evaluation",
    response={200: EvaluationOut, **WRITE_ERRORS},
    summary="Set what an evaluation form offers",
)
@require(p.FORMS_MANAGE)
def put_evaluation(request, form_id: str, payload: EvaluationIn):
    """An evaluation form has no public page until it offers at least one product."""
    form = _form_of_kind(request, form_id, "evaluation")
    try:
        setup = leads.do_set_evaluation(
            form, **payload.model_dump(), actor=Actor.from_request(request)
        )
    except FormError as exc:
        raise FieldErrors([{"field": exc.field, "message": str(exc)}]) from exc
    return {
        "form": form.pk,
        "products": setup.products,
        "assignee": setup.assignee_id,
        "recipients": setup.recipients,
    }


@router.put(
    "/forms/{form_id}/resource",
    response={200: ResourceChoiceOut, **WRITE_ERRORS},
    summary="Set what a resource form gives",
)
@require(p.FORMS_MANAGE)
def put_resource(request, form_id: str, payload: ResourceChoiceIn):
    """A resource form has no public page until it gives a resource."""
    from mailmarketer.signup import resources

    form = _form_of_kind(request, form_id, "resource")
    resource = rq.get_resource(request.workspace, payload.resource)
    if resource is None:
        raise FieldErrors([{"field": "resource", "message": "no such resource in this workspace"}])
    resources.do_bind_resource(form, resource, actor=Actor.from_request(request))
    return {"form": form.pk, "resource": resource.pk}
