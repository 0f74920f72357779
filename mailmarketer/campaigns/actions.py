"""Every write to campaigns and layouts: one transaction each, one audit row each (subscribers
named by uuid only), side effects (test mail) after commit.

- Content is compiled when it is saved, so a template that cannot render is refused with its
  field and line (TemplateError, an ActionError) instead of failing mid-send; the links found
  are stored then (and again at launch, when a layout may have changed).
- Status changes all go through `_transition`, which enforces models.TRANSITIONS on the row
  locked for the change; the thin helpers (schedule, start, pause, resume, cancel) add their
  own checks and fields. The delivery engine reacts to the statuses.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
import zoneinfo
from collections.abc import Iterable
from datetime import UTC, datetime

from django.db import transaction
from django.db.models import Max, Sum
from django.utils.timezone import now

from mailmarketer.accounts.actions import ActionError, Conflict, audit
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience.emails import InvalidEmail, normalise_email
from mailmarketer.audience.models import MailingList, Segment, Subscriber

from . import rendering
from .layouts import content_slots
from .models import (
    EDITABLE_STATUSES,
    TRANSITIONS,
    Attachment,
    Campaign,
    CampaignLink,
    Layout,
)

Status = Campaign.Status


class TemplateError(ActionError):
    """Content that cannot be used; `field` and `line` say where."""

    code = "template"

    def __init__(self, problem: rendering.TemplateProblem):
        super().__init__(str(problem))
        self.field = problem.field
        self.line = problem.line


# -- field validation ------------------------------------------------------------------------

CAMPAIGN_FIELDS = (
    "name",
    "kind",
    "subject",
    "from_name",
    "from_email",
    "reply_to",
    "body_format",
    "body",
    "text_body",
    "layout",
    "lists",
    "exclude_lists",
    "segment",
    "exclude_segments",
    "headers",
    "archive",
    "data",
)
# Recorded in the audit log with their values; the bodies and the data only as changed (data
# may name the person a transactional message is for).
_AUDIT_VALUES = frozenset(CAMPAIGN_FIELDS) - {"body", "text_body", "data"}
MAX_DATA = 64 * 1024  # bytes of template data, as JSON
MAX_BODY = 500_000  # characters of a body or text body as written
_LINE_BREAKS = re.compile(r"[\r\n\x00]")


def _one_line(field: str, value, max_length: int, *, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ActionError(f"{field} must be text")
    value = value.strip()
    if required and not value:
        raise ActionError(f"{field} is required", code="required")
    if _LINE_BREAKS.search(value):
        raise ActionError(f"{field} must be one line (no line breaks or NUL characters)")
    if len(value) > max_length:
        raise ActionError(f"{field} is longer than {max_length} characters")
    return value


def _address(field: str, value) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        return ""
    if not isinstance(value, str):
        raise ActionError(f"{field} must be an email address")
    try:
        return normalise_email(value)
    except InvalidEmail as exc:
        raise ActionError(f"{field}: {exc}", code="invalid_email") from None


def _body(field: str, value) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ActionError(f"{field} must be text")
    if len(value) > MAX_BODY:
        raise ActionError(f"{field} is longer than {MAX_BODY:,} characters")
    return value.replace("\r\n", "\n")


def _lists(workspace, values, field: str) -> list[MailingList]:
    if values is None:
        return []
    if isinstance(values, str | int | MailingList):
        values = [values]
    found: list[MailingList] = []
    missing = []
    for value in values:
        if isinstance(value, MailingList):
            if value.workspace_id != workspace.pk:
                missing.append(str(value.pk))
                continue
            found.append(value)
            continue
        qs = MailingList.objects.filter(workspace=workspace)
        key = str(value)
        item = qs.filter(pk=int(key)).first() if key.isdigit() else qs.filter(slug=key).first()
        if item is None:
            missing.append(key)
        else:
            found.append(item)
    if missing:
        raise ActionError(f"{field}: no such list in this workspace: {', '.join(missing)}")
    return list({m.pk: m for m in found}.values())


def _segments(workspace, values, field: str) -> list[Segment]:
    if values is None:
        return []
    if isinstance(values, str | int | Segment):
        values = [values]
    found: list[Segment] = []
    for value in values:
        key = value.pk if isinstance(value, Segment) else value
        segment = (
            Segment.objects.filter(workspace=workspace, pk=int(key)).first()
            if str(key).isdigit()
            else None
        )
        if segment is None:
            raise ActionError(f"{field}: no such segment in this workspace: {key}")
        found.append(segment)
    return list({s.pk: s for s in found}.values())


def _template_data(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
        raise ActionError("data must be an object with names as keys")
    try:
        size = len(json.dumps(value))
    except (TypeError, ValueError):
        raise ActionError("data must hold plain JSON values") from None
    if size > MAX_DATA:
        raise ActionError(f"data is larger than {MAX_DATA // 1024} KB as JSON")
    return value


def _layout(workspace, value) -> Layout | None:
    if value in (None, ""):
        return None
    if isinstance(value, Layout):
        if value.workspace_id != workspace.pk:
            raise ActionError("layout: no such layout in this workspace")
        return value
    key = str(value)
    layout = (
        Layout.objects.filter(workspace=workspace, pk=int(key)).first() if key.isdigit() else None
    )
    if layout is None:
        raise ActionError(f"layout: no such layout in this workspace: {key}")
    return layout


# -- headers -------------------------------------------------------------------------------------

# RFC 7230 token characters: letters, digits and !#$%&'*+-.^_`|~ (no colon, no space).
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,76}")
# Headers we set ourselves (or that relays set): a campaign may not add or override them.
RESERVED_HEADERS = frozenset(
    {
        "from", "to", "cc", "bcc", "subject", "date", "message-id", "return-path",
        "dkim-signature", "mime-version", "sender", "reply-to", "received", "feedback-id",
        "in-reply-to", "references", "authentication-results", "precedence", "auto-submitted",
    }
)  # fmt: skip
RESERVED_PREFIXES = ("list-", "content-", "arc-", "resent-")
MAX_HEADERS = 20
MAX_HEADER_VALUE = 900  # a header line may be 998 characters with its name
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def validate_headers(headers) -> list[list[str]]:
    """Extra headers as [[name, value], ...]; refuses header injection (CR, LF, NUL or other
    control characters in a value), malformed names, duplicates and the headers we set."""
    if headers is None:
        return []
    if isinstance(headers, dict):
        headers = list(headers.items())
    if not isinstance(headers, list | tuple):
        raise ActionError("headers must be a list of [name, value] pairs", code="invalid_header")
    if len(headers) > MAX_HEADERS:
        raise ActionError(f"at most {MAX_HEADERS} extra headers", code="invalid_header")
    clean: list[list[str]] = []
    seen = set()
    for pair in headers:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ActionError("each header must be a [name, value] pair", code="invalid_header")
        name, value = pair
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ActionError(
                f"header name {name!r} is not valid: use letters, digits and - only, "
                "no spaces or colons",
                code="invalid_header",
            )
        lower = name.lower()
        if lower in RESERVED_HEADERS or lower.startswith(RESERVED_PREFIXES):
            raise ActionError(
                f"header {name!r} is set by Mail Marketer itself and cannot be added",
                code="invalid_header",
            )
        if lower in seen:
            raise ActionError(f"header {name!r} is given twice", code="invalid_header")
        seen.add(lower)
        if not isinstance(value, str):
            raise ActionError(f"header {name!r}: the value must be text", code="invalid_header")
        if _CONTROL.search(value):
            raise ActionError(
                f"header {name!r}: the value contains a line break, NUL or another control "
                "character (header injection is refused)",
                code="invalid_header",
            )
        value = value.strip()
        if not value:
            raise ActionError(f"header {name!r} has no value", code="invalid_header")
        if len(value) > MAX_HEADER_VALUE:
            raise ActionError(
                f"header {name!r}: the value is longer than {MAX_HEADER_VALUE} characters",
                code="invalid_header",
            )
        clean.append([name, value])
    return clean


# -- campaigns ---------------------------------------------------------------------------------


def _apply(campaign: Campaign, fields: dict) -> dict:
    """Validate and set the fields; returns the many-to-many values to set after saving."""
    unknown = set(fields) - set(CAMPAIGN_FIELDS)
    if unknown:
        raise ActionError(f"unknown campaign fields: {', '.join(sorted(unknown))}")
    workspace = campaign.workspace
    m2m = {}
    for key, value in fields.items():
        if key == "name":
            campaign.name = _one_line("name", value, 200, required=True)
        elif key == "subject":
            campaign.subject = _one_line("subject", value, 500, required=True)
        elif key == "kind":
            if value not in Campaign.Kind.values:
                raise ActionError(f"kind must be one of {', '.join(Campaign.Kind.values)}")
            campaign.kind = value
        elif key == "from_name":
            campaign.from_name = _one_line("from_name", value, 100)
        elif key in ("from_email", "reply_to"):
            setattr(campaign, key, _address(key, value))
        elif key == "body_format":
            if value not in Campaign.Format.values:
                raise ActionError(f"body_format must be one of {', '.join(Campaign.Format.values)}")
            campaign.body_format = value
        elif key in ("body", "text_body"):
            setattr(campaign, key, _body(key, value))
        elif key == "layout":
            campaign.layout = _layout(workspace, value)
        elif key in ("lists", "exclude_lists"):
            m2m[key] = _lists(workspace, value, key)
        elif key == "segment":
            found = _segments(workspace, [] if value in (None, "") else value, key)
            campaign.segment = found[0] if found else None
        elif key == "exclude_segments":
            m2m[key] = _segments(workspace, value, key)
        elif key == "headers":
            campaign.headers = validate_headers(value)
        elif key == "archive":
            if not isinstance(value, bool):
                raise ActionError("archive must be true or false")
            campaign.archive = value
        elif key == "data":
            campaign.data = _template_data(value)
    if "lists" in m2m and "exclude_lists" in m2m:
        both = {m.pk for m in m2m["lists"]} & {m.pk for m in m2m["exclude_lists"]}
        if both:
            raise ActionError("a list cannot be both included and excluded")
    return m2m


def _compile(campaign: Campaign) -> rendering.CompiledCampaign:
    try:
        return rendering.compile_campaign(campaign)
    except rendering.TemplateProblem as problem:
        raise TemplateError(problem) from None


def store_links(campaign: Campaign, links: list[str]) -> None:
    existing = list(CampaignLink.objects.filter(campaign=campaign).values_list("url", flat=True))
    if existing == links:
        return
    CampaignLink.objects.filter(campaign=campaign).delete()
    CampaignLink.objects.bulk_create(
        CampaignLink(campaign=campaign, url=url, position=i) for i, url in enumerate(links)
    )


def _audit_value(campaign: Campaign, key: str):
    if key in ("lists", "exclude_lists", "exclude_segments"):
        return sorted(getattr(campaign, key).values_list("pk", flat=True))
    if key == "segment":
        return campaign.segment_id
    if key == "layout":
        return campaign.layout_id
    return getattr(campaign, key)


@transaction.atomic
def do_create_campaign(workspace, *, actor: Actor, **fields) -> Campaign:
    """A new draft. `name` and `subject` are required; content is compiled to check it."""
    for required in ("name", "subject"):
        if not fields.get(required):
            raise ActionError(f"{required} is required", code="required")
    campaign = Campaign(workspace=workspace, created_by=actor.user)
    m2m = _apply(campaign, fields)
    campaign.save()
    for key, values in m2m.items():
        getattr(campaign, key).set(values)
    store_links(campaign, _compile(campaign).links)
    audit(
        "campaign.created",
        actor=actor,
        workspace=workspace,
        obj=campaign,
        new={k: _audit_value(campaign, k) for k in fields if k in _AUDIT_VALUES},
    )
    return campaign


def _locked(campaign: Campaign) -> Campaign:
    # Lock the campaign's row only (not the joined workspace row) for the rest of the
    # transaction: status changes and edits of one campaign happen one at a time.
    return (
        Campaign.objects.select_for_update(of=("self",))
        .select_related("workspace")
        .get(pk=campaign.pk)
    )


def _refresh(campaign: Campaign, source: Campaign) -> Campaign:
    for f in Campaign._meta.concrete_fields:
        setattr(campaign, f.attname, getattr(source, f.attname))
    return campaign


@transaction.atomic
def do_update_campaign(campaign: Campaign, changes: dict, *, actor: Actor) -> Campaign:
    """Change a draft or scheduled campaign; its content is compiled again to check it."""
    locked = _locked(campaign)
    if locked.status not in EDITABLE_STATUSES:
        raise Conflict(
            f"a {locked.status} campaign cannot be edited: only drafts and scheduled campaigns can"
        )
    old = {k: _audit_value(locked, k) for k in changes if k in CAMPAIGN_FIELDS}
    old_bodies = {k: getattr(locked, k) for k in ("body", "text_body")}
    m2m = _apply(locked, changes)
    locked.updated_at = now()
    locked.save()
    for key, values in m2m.items():
        getattr(locked, key).set(values)
    included = set(locked.lists.values_list("pk", flat=True))
    if included & set(locked.exclude_lists.values_list("pk", flat=True)):
        raise ActionError("a list cannot be both included and excluded")
    store_links(locked, _compile(locked).links)
    new = {k: _audit_value(locked, k) for k in old}
    changed = [k for k in old if old[k] != new[k]]
    body_changed = [k for k in old_bodies if k in changes and getattr(locked, k) != old_bodies[k]]
    if changed:
        audit(
            "campaign.updated",
            actor=actor,
            workspace=locked.workspace,
            obj=locked,
            old={k: old[k] for k in changed if k in _AUDIT_VALUES}
            | {k: "(changed)" for k in body_changed},
            new={k: new[k] for k in changed if k in _AUDIT_VALUES}
            | {k: "(changed)" for k in body_changed},
        )
    return _refresh(campaign, locked)


@transaction.atomic
def do_clone_campaign(campaign: Campaign, *, actor: Actor, name: str | None = None) -> Campaign:
    """A new draft with the same content, audience, headers and attachments."""
    name = _one_line("name", name or f"{campaign.name} (copy)"[:200], 200, required=True)
    clone = Campaign.objects.create(
        workspace=campaign.workspace,
        kind=campaign.kind,
        name=name,
        subject=campaign.subject,
        from_name=campaign.from_name,
        from_email=campaign.from_email,
        reply_to=campaign.reply_to,
        body_format=campaign.body_format,
        body=campaign.body,
        text_body=campaign.text_body,
        layout=campaign.layout,
        segment=campaign.segment,
        headers=campaign.headers,
        archive=campaign.archive,
        data=campaign.data,
        created_by=actor.user,
    )
    clone.lists.set(campaign.lists.all())
    clone.exclude_lists.set(campaign.exclude_lists.all())
    clone.exclude_segments.set(campaign.exclude_segments.all())
    Attachment.objects.bulk_create(
        Attachment(
            campaign=clone,
            filename=a.filename,
            content_type=a.content_type,
            data=a.data,
            size=a.size,
        )
        for a in campaign.attachments.all()
    )
    CampaignLink.objects.bulk_create(
        CampaignLink(campaign=clone, url=link.url, position=link.position)
        for link in campaign.links.all()
    )
    audit(
        "campaign.cloned",
        actor=actor,
        workspace=campaign.workspace,
        obj=clone,
        new={"from_campaign": campaign.pk, "name": name},
    )
    return clone


@transaction.atomic
def do_delete_campaign(campaign: Campaign, *, actor: Actor) -> None:
    locked = _locked(campaign)
    if locked.status != Status.DRAFT:
        raise Conflict(
            f"only drafts can be deleted; this campaign is {locked.status} "
            "(cancel it instead, and its record stays)"
        )
    audit(
        "campaign.deleted",
        actor=actor,
        workspace=locked.workspace,
        obj=locked,
        old={"name": locked.name},
    )
    locked.delete()


# -- attachments -----------------------------------------------------------------------------

ATTACHMENT_MAX_BYTES = 1024 * 1024
ATTACHMENTS_MAX_TOTAL = 5 * 1024 * 1024
MAX_ATTACHMENTS = 10
# Content types accepted, with the file name endings that go with each.
ATTACHMENT_TYPES: dict[str, tuple[str, ...]] = {
    "application/pdf": (".pdf",),
    "image/png": (".png",),
    "image/jpeg": (".jpg", ".jpeg"),
    "image/gif": (".gif",),
    "image/webp": (".webp",),
    "text/plain": (".txt",),
    "text/csv": (".csv",),
    "text/calendar": (".ics",),
}
# What such files start with: a file that claims to be a PDF must be one.
_MAGIC: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
}
_FILENAME_UNSAFE = re.compile(r"[<>:\"|?*;\\/]")


def sanitise_filename(filename: str) -> str:
    """A file name safe in a MIME header and on any file system: no path, no control or
    direction-override characters, no quotes, at most 100 characters, the ending kept."""
    name = unicodedata.normalize("NFC", str(filename or ""))
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C")
    name = _FILENAME_UNSAFE.sub("_", name)
    name = " ".join(name.split()).strip(" .")
    stem, ext = os.path.splitext(name)
    if not stem:
        raise ActionError("the attachment needs a file name", code="invalid_attachment")
    ext = ext[:10]
    return stem[: 100 - len(ext)].rstrip(" .") + ext


def _check_attachment_data(content_type: str, data: bytes) -> None:
    magic = _MAGIC.get(content_type)
    if magic and not data.startswith(magic):
        raise ActionError(
            f"the file is not a {content_type} file (its content does not match)",
            code="invalid_attachment",
        )
    if content_type == "image/webp" and not (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        raise ActionError(
            "the file is not a image/webp file (its content does not match)",
            code="invalid_attachment",
        )
    if content_type.startswith("text/"):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ActionError(
                "a text attachment must be UTF-8 encoded", code="invalid_attachment"
            ) from None
        if "\x00" in text:
            raise ActionError("a text attachment cannot contain NUL", code="invalid_attachment")


@transaction.atomic
def do_add_attachment(
    campaign: Campaign, *, filename: str, content_type: str, data: bytes, actor: Actor
) -> Attachment:
    locked = _locked(campaign)
    if locked.status not in EDITABLE_STATUSES:
        raise Conflict(f"a {locked.status} campaign cannot be edited")
    name = sanitise_filename(filename)
    content_type = (content_type or "").split(";")[0].strip().lower()
    if content_type not in ATTACHMENT_TYPES:
        raise ActionError(
            f"attachments of type {content_type or '(none)'!r} are not accepted; accepted: "
            f"{', '.join(ATTACHMENT_TYPES)}",
            code="invalid_attachment",
        )
    if not name.lower().endswith(ATTACHMENT_TYPES[content_type]):
        raise ActionError(
            f"a {content_type} file must be named *{' or *'.join(ATTACHMENT_TYPES[content_type])}",
            code="invalid_attachment",
        )
    data = bytes(data)
    if not data:
        raise ActionError("the attachment is empty", code="invalid_attachment")
    if len(data) > ATTACHMENT_MAX_BYTES:
        raise ActionError(
            f"the attachment is {len(data):,} bytes; at most {ATTACHMENT_MAX_BYTES:,} "
            "(1 MB) are allowed",
            code="attachment_too_large",
        )
    _check_attachment_data(content_type, data)
    existing = Attachment.objects.filter(campaign=locked)
    if existing.count() >= MAX_ATTACHMENTS:
        raise ActionError(f"at most {MAX_ATTACHMENTS} attachments", code="attachment_too_large")
    total = (existing.aggregate(total=Sum("size"))["total"] or 0) + len(data)
    if total > ATTACHMENTS_MAX_TOTAL:
        raise ActionError(
            f"attachments would total {total:,} bytes; at most {ATTACHMENTS_MAX_TOTAL:,} "
            "(5 MB) per campaign",
            code="attachment_too_large",
        )
    attachment = Attachment.objects.create(
        campaign=locked, filename=name, content_type=content_type, data=data, size=len(data)
    )
    Campaign.objects.filter(pk=locked.pk).update(updated_at=now())
    audit(
        "campaign.attachment_added",
        actor=actor,
        workspace=locked.workspace,
        obj=locked,
        new={"filename": name, "content_type": content_type, "size": len(data)},
    )
    return attachment


@transaction.atomic
def do_remove_attachment(attachment: Attachment, *, actor: Actor) -> None:
    locked = _locked(attachment.campaign)
    if locked.status not in EDITABLE_STATUSES:
        raise Conflict(f"a {locked.status} campaign cannot be edited")
    audit(
        "campaign.attachment_removed",
        actor=actor,
        workspace=locked.workspace,
        obj=locked,
        old={"filename": attachment.filename, "size": attachment.size},
    )
    attachment.delete()
    Campaign.objects.filter(pk=locked.pk).update(updated_at=now())


# -- layouts -------------------------------------------------------------------------------------

LAYOUT_FIELDS = ("name", "html", "is_default")
# Statuses in which a campaign's messages are being made from its layout.
_SENDING = (Status.RUNNING, Status.PAUSED)


def check_layout_html(html) -> str:
    """The layout's HTML when it can be used: one {{ content }}, templates that compile and
    render with sample data, and nothing that the sanitiser would have to drop."""
    if not isinstance(html, str) or not html.strip():
        raise ActionError("the layout's HTML is empty", code="required")
    if len(html) > MAX_BODY:
        raise ActionError(f"the layout is longer than {MAX_BODY:,} characters")
    slots = content_slots(html)
    if slots != 1:
        raise ActionError(
            "a layout needs exactly one {{ content }}, where the campaign's content goes"
            + (f" (this one has {slots})" if slots else ""),
            code="content_slot",
        )
    try:
        rendering.compile_content(
            rendering.ContentSpec(
                kind=Campaign.Kind.TRANSACTIONAL,
                subject="Layout check",
                body_format=Campaign.Format.HTML,
                body="<p>Content</p>",
                layout_html=html,
            ),
            workspace={"name": "Sample", "postal_address": "1 Sample Street", "sender_name": ""},
            campaign={"name": "Sample", "subject": "Sample", "lists": ["Sample list"]},
        )
    except rendering.TemplateProblem as problem:
        raise TemplateError(problem) from None
    return html


def _clean_layout_fields(fields: dict) -> dict:
    unknown = set(fields) - set(LAYOUT_FIELDS)
    if unknown:
        raise ActionError(f"unknown layout fields: {', '.join(sorted(unknown))}")
    clean = {}
    if "name" in fields:
        clean["name"] = _one_line("name", fields["name"], 150, required=True)
    if "html" in fields:
        clean["html"] = check_layout_html(_body("html", fields["html"]))
    if "is_default" in fields:
        if not isinstance(fields["is_default"], bool):
            raise ActionError("is_default must be true or false")
        clean["is_default"] = fields["is_default"]
    return clean


def _campaigns_sending_with(layout: Layout) -> list[str]:
    return list(
        Campaign.objects.filter(layout=layout, status__in=_SENDING).values_list("name", flat=True)
    )


@transaction.atomic
def do_create_layout(workspace, *, actor: Actor, name: str, html: str, is_default=False) -> Layout:
    fields = _clean_layout_fields({"name": name, "html": html, "is_default": is_default})
    if fields["is_default"]:
        Layout.objects.filter(workspace=workspace, is_default=True).update(is_default=False)
    layout = Layout.objects.create(workspace=workspace, **fields)
    audit(
        "layout.created",
        actor=actor,
        workspace=workspace,
        obj=layout,
        new={"name": layout.name, "is_default": layout.is_default},
    )
    return layout


@transaction.atomic
def do_update_layout(layout: Layout, changes: dict, *, actor: Actor) -> Layout:
    layout = Layout.objects.select_for_update().get(pk=layout.pk)
    fields = _clean_layout_fields(changes)
    if "html" in fields and fields["html"] != layout.html:
        sending = _campaigns_sending_with(layout)
        if sending:
            raise Conflict(
                "this layout is used by campaigns that are sending "
                f"({', '.join(sending)}): changing it would change their messages half-way; "
                "make a new layout instead"
            )
    old = {k: getattr(layout, k) for k in fields}
    if fields.get("is_default"):
        Layout.objects.filter(workspace_id=layout.workspace_id, is_default=True).exclude(
            pk=layout.pk
        ).update(is_default=False)
    for key, value in fields.items():
        setattr(layout, key, value)
    changed = [k for k in fields if old[k] != fields[k]]
    if changed:
        layout.updated_at = now()
        layout.save()
        # Campaigns using it compile differently now: their cached compilations are stale.
        Campaign.objects.filter(layout=layout, status__in=EDITABLE_STATUSES).update(
            updated_at=layout.updated_at
        )
        audit(
            "layout.updated",
            actor=actor,
            workspace=layout.workspace,
            obj=layout,
            old={k: old[k] if k != "html" else "(changed)" for k in changed},
            new={k: fields[k] if k != "html" else "(changed)" for k in changed},
        )
    return layout


@transaction.atomic
def do_delete_layout(layout: Layout, *, actor: Actor) -> None:
    in_use = list(
        Campaign.objects.filter(
            layout=layout, status__in=(*_SENDING, Status.SCHEDULED)
        ).values_list("name", flat=True)
    )
    if in_use:
        raise Conflict(
            f"this layout is used by scheduled or sending campaigns ({', '.join(in_use)})"
        )
    audit(
        "layout.deleted",
        actor=actor,
        workspace=layout.workspace,
        obj=layout,
        old={"name": layout.name},
    )
    layout.delete()


# -- status ------------------------------------------------------------------------------------


def _transition(
    locked: Campaign,
    to_status: str,
    *,
    actor: Actor,
    reason: str = "",
    event: str = "campaign.status_changed",
    fields: dict | None = None,
    audit_new: dict | None = None,
) -> Campaign:
    """The one place a campaign's status changes (on a row locked by the caller)."""
    if to_status not in Status.values:
        raise ActionError(f"unknown status {to_status!r}; one of {', '.join(Status.values)}")
    from_status = locked.status
    if to_status not in TRANSITIONS[from_status]:
        allowed = ", ".join(sorted(TRANSITIONS[from_status])) or "none: it is final"
        raise Conflict(
            f"a campaign cannot go from {from_status} to {to_status} (from {from_status}: "
            f"{allowed})",
        )
    reason = _one_line("reason", reason, 500)
    updates = {"status": to_status, "status_reason": reason, **(fields or {})}
    Campaign.objects.filter(pk=locked.pk).update(**updates)
    for key, value in updates.items():
        setattr(locked, key, value)
    audit(
        event,
        actor=actor,
        workspace=locked.workspace,
        obj=locked,
        old={"status": from_status},
        new={"status": to_status, **({"reason": reason} if reason else {}), **(audit_new or {})},
    )
    return locked


@transaction.atomic
def do_transition_campaign(
    campaign: Campaign, to_status: str, *, actor: Actor, reason: str = ""
) -> Campaign:
    """Move a campaign to another status, as models.TRANSITIONS allows (ActionError naming
    from and to otherwise). Starting goes through do_start_campaign (it has checks to make)."""
    locked = _locked(campaign)
    if to_status == Status.RUNNING and locked.status in (Status.DRAFT, Status.SCHEDULED):
        return _refresh(campaign, _start(locked, actor=actor))
    _transition(locked, to_status, actor=actor, reason=reason)
    return _refresh(campaign, locked)


def parse_local_datetime(workspace, value: str) -> datetime:
    """ "2026-12-01T09:00" (as a form sends it) read in the workspace's time zone; a value with
    its own offset keeps it. Refuses times that do not exist or happen twice there."""
    try:
        parsed = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise ActionError(
            f"{value!r} is not a date and time (expected e.g. 2026-12-01T09:00)"
        ) from None
    if parsed.tzinfo is not None:
        return parsed
    zone = zoneinfo.ZoneInfo(workspace.timezone)
    first = parsed.replace(tzinfo=zone, fold=0)
    second = parsed.replace(tzinfo=zone, fold=1)
    round_trip = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if round_trip != parsed:
        raise ActionError(
            f"{parsed:%Y-%m-%d %H:%M} does not exist in {workspace.timezone} (the clocks "
            "change then); choose another time",
            code="invalid_time",
        )
    if first.utcoffset() != second.utcoffset():
        raise ActionError(
            f"{parsed:%Y-%m-%d %H:%M} happens twice in {workspace.timezone} (the clocks go "
            "back then); choose another time",
            code="invalid_time",
        )
    return first


def launch_problems(campaign: Campaign) -> rendering.CompiledCampaign:
    """Refuse (ActionError) what cannot be sent; returns the compiled content otherwise."""
    workspace = campaign.workspace
    if campaign.kind == Campaign.Kind.MARKETING and not workspace.postal_address.strip():
        raise ActionError(
            "marketing email must show the sender's postal address: add it in the workspace "
            "settings first",
            code="postal_address_required",
        )
    if not campaign.lists.exists():
        raise ActionError("choose at least one list to send to", code="lists_required")
    if not (campaign.from_email or workspace.sender_email):
        raise ActionError(
            "give the campaign a from address, or set the workspace's sender address",
            code="from_required",
        )
    if not campaign.subject.strip():
        raise ActionError("the campaign has no subject", code="subject_required")
    return _compile(campaign)


def launch_fields(campaign: Campaign) -> dict:
    """What launching sets: the audience snapshot (subscribers up to the highest id now;
    people who join later are not included) and a fresh planning state."""
    top = Subscriber.objects.filter(workspace_id=campaign.workspace_id).aggregate(top=Max("id"))
    return {
        "started_at": now(),
        "finished_at": None,
        "audience_max_id": top["top"] or 0,
        "planned_up_to": 0,
        "planning_done": False,
    }


def _start(locked: Campaign, *, actor: Actor) -> Campaign:
    compiled = launch_problems(locked)
    store_links(locked, compiled.links)
    fields = launch_fields(locked)
    return _transition(
        locked,
        Status.RUNNING,
        actor=actor,
        event="campaign.started",
        fields=fields,
        audit_new={"audience_max_id": fields["audience_max_id"]},
    )


@transaction.atomic
def do_start_campaign(campaign: Campaign, *, actor: Actor) -> Campaign:
    """Launch now (from draft or scheduled)."""
    locked = _locked(campaign)
    if locked.status not in (Status.DRAFT, Status.SCHEDULED):
        raise Conflict(f"a {locked.status} campaign cannot be started")
    return _refresh(campaign, _start(locked, actor=actor))


@transaction.atomic
def do_schedule_campaign(campaign: Campaign, when, *, actor: Actor) -> Campaign:
    """Start at `when` (an aware datetime, or text read by parse_local_datetime). The checks
    that starting makes are made now too, so a schedule that cannot start is refused today."""
    locked = _locked(campaign)
    if locked.status not in (Status.DRAFT, Status.SCHEDULED):
        raise Conflict(f"a {locked.status} campaign cannot be scheduled")
    if isinstance(when, str):
        when = parse_local_datetime(locked.workspace, when)
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise ActionError("the schedule time must be a date and time with a time zone")
    if when <= now():
        raise ActionError("the schedule time is in the past", code="invalid_time")
    launch_problems(locked)
    if locked.status == Status.SCHEDULED:
        old = locked.scheduled_at
        Campaign.objects.filter(pk=locked.pk).update(scheduled_at=when)
        locked.scheduled_at = when
        audit(
            "campaign.rescheduled",
            actor=actor,
            workspace=locked.workspace,
            obj=locked,
            old={"scheduled_at": old.isoformat() if old else None},
            new={"scheduled_at": when.isoformat()},
        )
        return _refresh(campaign, locked)
    _transition(
        locked,
        Status.SCHEDULED,
        actor=actor,
        event="campaign.scheduled",
        fields={"scheduled_at": when},
        audit_new={"scheduled_at": when.isoformat()},
    )
    return _refresh(campaign, locked)


@transaction.atomic
def do_unschedule_campaign(campaign: Campaign, *, actor: Actor) -> Campaign:
    locked = _locked(campaign)
    _transition(locked, Status.DRAFT, actor=actor, fields={"scheduled_at": None})
    return _refresh(campaign, locked)


@transaction.atomic
def do_pause_campaign(campaign: Campaign, *, actor: Actor, reason: str = "") -> Campaign:
    locked = _locked(campaign)
    _transition(locked, Status.PAUSED, actor=actor, reason=reason, event="campaign.paused")
    return _refresh(campaign, locked)


@transaction.atomic
def do_resume_campaign(campaign: Campaign, *, actor: Actor) -> Campaign:
    """Paused (or failed) -> running; the audience snapshot is kept."""
    locked = _locked(campaign)
    if locked.status not in (Status.PAUSED, Status.FAILED):
        raise Conflict(f"a {locked.status} campaign cannot be resumed")
    _transition(locked, Status.RUNNING, actor=actor, event="campaign.resumed")
    return _refresh(campaign, locked)


@transaction.atomic
def do_cancel_campaign(campaign: Campaign, *, actor: Actor, reason: str = "") -> Campaign:
    locked = _locked(campaign)
    _transition(
        locked,
        Status.CANCELLED,
        actor=actor,
        reason=reason,
        event="campaign.cancelled",
        fields={"finished_at": now()},
    )
    return _refresh(campaign, locked)


# -- test sends ----------------------------------------------------------------------------------

MAX_TEST_ADDRESSES = 10


def _test_addresses(addresses: Iterable[str]) -> list[str]:
    if isinstance(addresses, str):
        addresses = re.split(r"[,\s;]+", addresses)
    clean = []
    for address in addresses:
        if not isinstance(address, str) or not address.strip():
            continue
        try:
            clean.append(normalise_email(address))
        except InvalidEmail as exc:
            raise ActionError(f"{address!r}: {exc}", code="invalid_email") from None
    clean = list(dict.fromkeys(clean))
    if not clean:
        raise ActionError("give at least one address to send the test to", code="required")
    if len(clean) > MAX_TEST_ADDRESSES:
        raise ActionError(f"a test goes to at most {MAX_TEST_ADDRESSES} addresses")
    return clean


@transaction.atomic
def do_send_test(
    campaign: Campaign,
    addresses: list[str],
    *,
    actor: Actor,
    subscriber: Subscriber | None = None,
) -> rendering.RenderedMessage:
    """Render the campaign (with sample data, or as `subscriber`) and send it to staff
    addresses (not subscribers, not in the ledger) through the delivery engine, after commit."""
    from .queries import preview_campaign

    to = _test_addresses(addresses)
    try:
        rendered = preview_campaign(campaign, subscriber)
    except rendering.TemplateProblem as problem:
        raise TemplateError(problem) from None
    except rendering.RenderError as exc:
        raise ActionError(str(exc), code="template") from None
    audit(
        "campaign.test_sent",
        actor=actor,
        workspace=campaign.workspace,
        obj=campaign,
        new={"recipients": len(to)}
        | ({"as_subscriber": str(subscriber.uuid)} if subscriber else {}),
    )

    def send():
        # The delivery engine builds and sends the message (MIME, DKIM, the relay or outbox);
        # imported here because delivery sits above campaigns.
        from mailmarketer.delivery.engine import send_test_message

        for address in to:
            send_test_message(campaign, rendered, address)

    transaction.on_commit(send)
    return rendered


# -- retrying failed messages ----------------------------------------------------------------------


@transaction.atomic
def do_retry_failed(campaign: Campaign, *, actor: Actor) -> int:
    """Queue the campaign's failed ledger rows again (attempts from zero, due now); returns how
    many. A finished campaign runs again to send them; a paused or failed one sends them once
    resumed. Only launched campaigns that were not cancelled have rows to retry.

    The ledger belongs to delivery; this is the one write to it from campaigns, because it is a
    staff decision about a campaign (audited as such) and the status change must happen in the
    same transaction. A finished campaign reopens here and nowhere else: TRANSITIONS keeps
    finished final for every other path, since only requeued rows give it something to do."""
    from mailmarketer.delivery.models import Delivery  # delivery sits above campaigns

    locked = _locked(campaign)
    retryable = (Status.RUNNING, Status.PAUSED, Status.FAILED, Status.FINISHED)
    if locked.status not in retryable:
        raise Conflict(
            f"a {locked.status} campaign has no messages to retry (only running, paused, failed "
            "and finished campaigns do)"
        )
    count = Delivery.objects.filter(
        workspace_id=locked.workspace_id,
        campaign_id=locked.pk,
        status__in=(Delivery.Status.FAILED, Delivery.Status.DEAD),
    ).update(
        status=Delivery.Status.QUEUED,
        attempts=0,
        lease_expiries=0,
        next_attempt_at=now(),
        lease_owner="",
        lease_expires_at=None,
        # The retry window (MM_DELIVERY_RETRY_DEADLINE_S) counts from the ledger row's
        # created_at: a staff retry starts a new series of attempts, so it starts a new window.
        created_at=now(),
    )
    if not count:
        raise ActionError("this campaign has no failed messages to retry", code="nothing_to_retry")
    old_status = locked.status
    if locked.status == Status.FINISHED:
        Campaign.objects.filter(pk=locked.pk).update(
            status=Status.RUNNING, status_reason="", finished_at=None
        )
        locked.status, locked.status_reason, locked.finished_at = Status.RUNNING, "", None
    audit(
        "campaign.retried",
        actor=actor,
        workspace=locked.workspace,
        obj=locked,
        old={"status": old_status},
        new={"status": locked.status, "requeued": count},
    )
    _refresh(campaign, locked)
    return count


# -- transactional messages ------------------------------------------------------------------------

TRANSACTIONAL_FIELDS = (
    "data",
    "subject",
    "body_format",
    "body",
    "text_body",
    "from_name",
    "from_email",
    "reply_to",
    "layout",
)


def find_recipient(workspace, address: str) -> Subscriber:
    """The subscriber with this address, for a transactional message. A message goes only to
    someone who is a subscriber already: the ledger names its recipient, and nothing is added
    to the audience behind the staff's back (add the person first, with no lists)."""
    try:
        email = normalise_email(address)
    except InvalidEmail as exc:
        raise ActionError(f"to: {exc}", code="invalid_email") from None
    person = Subscriber.objects.filter(workspace=workspace, email=email).first()
    if person is None:
        raise ActionError(
            f"to: {email} is not a subscriber of this workspace; add the person first (no lists "
            "needed), then send",
            code="not_a_subscriber",
        )
    return person


@transaction.atomic
def do_send_transactional(workspace, subscriber: Subscriber, *, actor: Actor, **fields) -> Campaign:
    """One message to one subscriber through the delivery engine: a campaign of kind
    transactional, created running with its single ledger row and its planning done (there is
    no audience to plan), which the engine sends like any other and marks finished.

    The content is compiled first, so a template that cannot render is refused (TemplateError,
    with its line) and nothing is created. Transactional mail reaches people who unsubscribed
    from marketing; a blocklisted person, and an address suppressed for a bounce, a complaint,
    erasure or by hand, are refused here as the engine would skip them at send time."""
    from mailmarketer.audience.actions import suppression_for
    from mailmarketer.delivery.engine import TRANSACTIONAL_BLOCKING  # delivery sits above
    from mailmarketer.delivery.models import Delivery

    unknown = set(fields) - set(TRANSACTIONAL_FIELDS)
    if unknown:
        raise ActionError(f"unknown message fields: {', '.join(sorted(unknown))}")
    if subscriber.workspace_id != workspace.pk:
        raise ActionError("the subscriber belongs to another workspace", code="not_found")
    if subscriber.status == Subscriber.Status.BLOCKLISTED:
        raise Conflict("the subscriber is blocklisted: nothing is sent to them", code="blocklisted")
    suppression = suppression_for(workspace, subscriber.email)
    if suppression is not None and suppression.reason in TRANSACTIONAL_BLOCKING:
        raise Conflict(
            f"the address is suppressed ({suppression.get_reason_display().lower()}): nothing is "
            "sent to it",
            code="suppressed",
        )
    campaign = Campaign(
        workspace=workspace, kind=Campaign.Kind.TRANSACTIONAL, created_by=actor.user
    )
    _apply(campaign, {"name": str(fields.get("subject") or "")[:200] or "Transactional", **fields})
    if not campaign.subject.strip():
        raise ActionError("subject is required", code="required")
    if not (campaign.from_email or workspace.sender_email):
        raise ActionError(
            "from_email: give a from address, or set the workspace's sender address",
            code="from_required",
        )
    compiled = _compile(campaign)
    stamp = now()
    campaign.status = Status.RUNNING
    campaign.started_at = stamp
    campaign.audience_max_id = subscriber.pk
    campaign.planned_up_to = subscriber.pk
    campaign.planning_done = True
    campaign.save()
    store_links(campaign, compiled.links)
    Delivery.objects.create(workspace=workspace, campaign=campaign, subscriber=subscriber)
    audit(
        "campaign.transactional_queued",
        actor=actor,
        workspace=workspace,
        obj=campaign,
        new={"subscriber": str(subscriber.uuid), "subject": campaign.subject},
    )
    return campaign
