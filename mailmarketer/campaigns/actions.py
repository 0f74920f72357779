"""Every write to the content of campaigns and layouts: one transaction each, one audit row each.

- Content is compiled when it is saved, so a template that cannot render is refused with its
  field and line (TemplateError, an ActionError) instead of failing mid-send; the links found
  are stored then (and again at launch, when a layout may have changed).
- A campaign's status is not written here: sending it (start, schedule, pause, resume, cancel,
  retry, test and transactional sends) belongs to delivery (delivery/campaign_actions.py),
  which uses the validation, compilation and locking helpers below. Here the status is only
  read, to refuse editing a campaign that is no longer a draft or scheduled.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata

from django.db import transaction
from django.db.models import Sum
from django.utils.timezone import now

from mailmarketer.accounts.actions import ActionError, Conflict, audit
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import TrackingMode
from mailmarketer.audience.emails import InvalidEmail, normalise_email
from mailmarketer.audience.models import MailingList, Segment
from mailmarketer.lib.text import one_line_problem

from . import rendering
from .layouts import content_slots
from .models import EDITABLE_STATUSES, Attachment, Campaign, CampaignLink, Layout

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
    "tracking_mode",
)
# Recorded in the audit log with their values; the bodies and the data only as changed (data
# may name the person a transactional message is for).
_AUDIT_VALUES = frozenset(CAMPAIGN_FIELDS) - {"body", "text_body", "data"}
MAX_DATA = 64 * 1024  # bytes of template data, as JSON
MAX_BODY = 500_000  # characters of a body or text body as written


def one_line(field: str, value, max_length: int, *, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ActionError(f"{field} must be text", field=field)
    value = value.strip()
    if required and not value:
        raise ActionError(f"{field} is required", code="required", field=field)
    problem = one_line_problem(value)  # a name or subject reaches headers
    if problem:
        raise ActionError(f"{field} {problem}", field=field)
    if len(value) > max_length:
        raise ActionError(f"{field} is longer than {max_length} characters", field=field)
    return value


def _address(field: str, value) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        return ""
    if not isinstance(value, str):
        raise ActionError(f"{field} must be an email address", field=field)
    try:
        return normalise_email(value)
    except InvalidEmail as exc:
        raise ActionError(f"{field}: {exc}", code="invalid_email", field=field) from None


def _body(field: str, value) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ActionError(f"{field} must be text", field=field)
    if len(value) > MAX_BODY:
        raise ActionError(f"{field} is longer than {MAX_BODY:,} characters", field=field)
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
        raise ActionError(
            f"{field}: no such list in this workspace: {', '.join(missing)}", field=field
        )
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
            raise ActionError(f"{field}: no such segment in this workspace: {key}", field=field)
        found.append(segment)
    return list({s.pk: s for s in found}.values())


def _template_data(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
        raise ActionError("data must be an object with names as keys", field="data")
    try:
        size = len(json.dumps(value))
    except (TypeError, ValueError):
        raise ActionError("data must hold plain JSON values", field="data") from None
    if size > MAX_DATA:
        raise ActionError(f"data is larger than {MAX_DATA // 1024} KB as JSON", field="data")
    return value


def _layout(workspace, value) -> Layout | None:
    if value in (None, ""):
        return None
    if isinstance(value, Layout):
        if value.workspace_id != workspace.pk:
            raise ActionError("layout: no such layout in this workspace", field="layout")
        return value
    key = str(value)
    layout = (
        Layout.objects.filter(workspace=workspace, pk=int(key)).first() if key.isdigit() else None
    )
    if layout is None:
        raise ActionError(f"layout: no such layout in this workspace: {key}", field="layout")
    return layout


# How many staff addresses one test send may name (the form says so; the test send itself is
# delivery's, campaign_actions.do_send_test).
MAX_TEST_ADDRESSES = 10


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
        raise ActionError(
            "headers must be a list of [name, value] pairs", code="invalid_header", field="headers"
        )
    if len(headers) > MAX_HEADERS:
        raise ActionError(
            f"at most {MAX_HEADERS} extra headers", code="invalid_header", field="headers"
        )
    clean: list[list[str]] = []
    seen = set()
    for pair in headers:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ActionError(
                "each header must be a [name, value] pair", code="invalid_header", field="headers"
            )
        name, value = pair
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ActionError(
                f"header name {name!r} is not valid: use letters, digits and - only, "
                "no spaces or colons",
                code="invalid_header",
                field="headers",
            )
        lower = name.lower()
        if lower in RESERVED_HEADERS or lower.startswith(RESERVED_PREFIXES):
            raise ActionError(
                f"header {name!r} is set by Mail Marketer itself and cannot be added",
                code="invalid_header",
                field="headers",
            )
        if lower in seen:
            raise ActionError(
                f"header {name!r} is given twice", code="invalid_header", field="headers"
            )
        seen.add(lower)
        if not isinstance(value, str):
            raise ActionError(
                f"header {name!r}: the value must be text", code="invalid_header", field="headers"
            )
        if _CONTROL.search(value):
            raise ActionError(
                f"header {name!r}: the value contains a line break, NUL or another control "
                "character (header injection is refused)",
                code="invalid_header",
                field="headers",
            )
        value = value.strip()
        if not value:
            raise ActionError(
                f"header {name!r} has no value", code="invalid_header", field="headers"
            )
        if len(value) > MAX_HEADER_VALUE:
            raise ActionError(
                f"header {name!r}: the value is longer than {MAX_HEADER_VALUE} characters",
                code="invalid_header",
                field="headers",
            )
        clean.append([name, value])
    return clean


# -- campaigns ---------------------------------------------------------------------------------


def apply_fields(campaign: Campaign, fields: dict) -> dict:
    """Validate and set the fields; returns the many-to-many values to set after saving."""
    unknown = set(fields) - set(CAMPAIGN_FIELDS)
    if unknown:
        raise ActionError(f"unknown campaign fields: {', '.join(sorted(unknown))}")
    workspace = campaign.workspace
    m2m = {}
    for key, value in fields.items():
        if key == "name":
            campaign.name = one_line("name", value, 200, required=True)
        elif key == "subject":
            campaign.subject = one_line("subject", value, 500, required=True)
        elif key == "kind":
            if value not in Campaign.Kind.values:
                raise ActionError(
                    f"kind must be one of {', '.join(Campaign.Kind.values)}", field="kind"
                )
            campaign.kind = value
        elif key == "from_name":
            campaign.from_name = one_line("from_name", value, 100)
        elif key in ("from_email", "reply_to"):
            setattr(campaign, key, _address(key, value))
        elif key == "body_format":
            if value not in Campaign.Format.values:
                raise ActionError(
                    f"body_format must be one of {', '.join(Campaign.Format.values)}",
                    field="body_format",
                )
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
                raise ActionError("archive must be true or false", field="archive")
            campaign.archive = value
        elif key == "data":
            campaign.data = _template_data(value)
        elif key == "tracking_mode":
            # "" follows the workspace's setting.
            if value not in ("", *TrackingMode.values):
                raise ActionError(
                    f"tracking_mode must be empty or one of {', '.join(TrackingMode.values)}",
                    field="tracking_mode",
                )
            campaign.tracking_mode = value
    if "lists" in m2m and "exclude_lists" in m2m:
        both = {m.pk for m in m2m["lists"]} & {m.pk for m in m2m["exclude_lists"]}
        if both:
            raise ActionError("a list cannot be both included and excluded", field="exclude_lists")
    return m2m


def compile_checked(campaign: Campaign) -> rendering.CheckedContent:
    # In a child process under a hard limit: a request never waits on a runaway template.
    try:
        return rendering.check_campaign(campaign)
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
            raise ActionError(f"{required} is required", code="required", field=required)
    campaign = Campaign(workspace=workspace, created_by=actor.user)
    m2m = apply_fields(campaign, fields)
    campaign.save()
    for key, values in m2m.items():
        getattr(campaign, key).set(values)
    store_links(campaign, compile_checked(campaign).links)
    audit(
        "campaign.created",
        actor=actor,
        workspace=workspace,
        obj=campaign,
        new={k: _audit_value(campaign, k) for k in fields if k in _AUDIT_VALUES},
    )
    return campaign


def lock_campaign(campaign: Campaign) -> Campaign:
    # Lock the campaign's row only (not the joined workspace row) for the rest of the
    # transaction: status changes and edits of one campaign happen one at a time.
    return (
        Campaign.objects.select_for_update(of=("self",))
        .select_related("workspace")
        .get(pk=campaign.pk)
    )


def refresh_from(campaign: Campaign, source: Campaign) -> Campaign:
    for f in Campaign._meta.concrete_fields:
        setattr(campaign, f.attname, getattr(source, f.attname))
    return campaign


@transaction.atomic
def do_update_campaign(campaign: Campaign, changes: dict, *, actor: Actor) -> Campaign:
    """Change a draft or scheduled campaign; its content is compiled again to check it."""
    locked = lock_campaign(campaign)
    if locked.status not in EDITABLE_STATUSES:
        raise Conflict(
            f"a {locked.status} campaign cannot be edited: only drafts and scheduled campaigns can"
        )
    old = {k: _audit_value(locked, k) for k in changes if k in CAMPAIGN_FIELDS}
    old_bodies = {k: getattr(locked, k) for k in ("body", "text_body")}
    m2m = apply_fields(locked, changes)
    locked.updated_at = now()
    locked.save()
    for key, values in m2m.items():
        getattr(locked, key).set(values)
    included = set(locked.lists.values_list("pk", flat=True))
    if included & set(locked.exclude_lists.values_list("pk", flat=True)):
        raise ActionError("a list cannot be both included and excluded", field="exclude_lists")
    store_links(locked, compile_checked(locked).links)
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
    return refresh_from(campaign, locked)


@transaction.atomic
def do_clone_campaign(campaign: Campaign, *, actor: Actor, name: str | None = None) -> Campaign:
    """A new draft with the same content, audience, headers and attachments."""
    name = one_line("name", name or f"{campaign.name} (copy)"[:200], 200, required=True)
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
    locked = lock_campaign(campaign)
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
    locked = lock_campaign(campaign)
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
    locked = lock_campaign(attachment.campaign)
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
        rendering.check_content(
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
        clean["name"] = one_line("name", fields["name"], 150, required=True)
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
