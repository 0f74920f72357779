"""Audience pages: the lists overview ("audience-home"), editing and deleting a list, and the
export of a list; plus the helpers the other audience page modules share.

Each view names its one permission in its decorator. Where a page needs a second one (an export
also shows personal data, so it needs audience.view_personal_data beside audience.export), the
view checks it first and answers with the same 403 page. Writes go through actions.py, reads
through queries.py; a refusal from an action is shown on the page with a 4xx status. Objects
named in a URL are looked up inside request.workspace only, so another workspace's id is a 404.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.http import content_disposition_header
from django.utils.timezone import now
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import workspace_view
from mailmarketer.accounts.actions import ActionError, Conflict
from mailmarketer.accounts.actors import Actor

from . import actions, exporting, queries
from .forms import ExportForm, ListForm
from .models import MailingList
from .segments import segment_queryset
from .segments.queries import segments_for

EXPORT_CHUNK = 2000  # rows fetched per round trip while streaming an export


# -- shared by the audience pages ------------------------------------------------------------


def status_for(exc: ActionError) -> int:
    if isinstance(exc, Conflict) or exc.code in ("suppressed", "blocklisted"):
        return 409
    if exc.code == "forbidden":
        return 403
    if exc.code == "not_found":
        return 404
    return 400


def add_validation_error(form, exc: ValidationError) -> None:
    """A model's validation errors onto the form fields of the same name."""
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc)


def sees_personal_data(request) -> bool:
    return request.membership.has(p.VIEW_PERSONAL_DATA)


def forbidden(request, permission: str):
    """The same refusal workspace_view gives, for a view's second permission."""
    return render(request, "web/forbidden.html", {"permission": permission}, status=403)


def optional_url(ws: str, *names: str) -> str:
    """The URL of a page another part of the product may not have built yet (the first of
    these route names that exists), or ""."""
    for name in names:
        try:
            return reverse(name, kwargs={"ws": ws})
        except NoReverseMatch:
            continue
    return ""


# Route names of the pages other parts of the audience build.
IMPORTS = ("audience-imports",)
SEGMENTS = ("audience-segments", "segment-list")


def audience_subnav(request, current: str) -> list[dict]:
    """The audience section's pages this member may open; imports and segments only once they
    exist."""
    ws = request.workspace.slug
    membership = request.membership
    items = [
        ("lists", "Lists", reverse("audience-home", kwargs={"ws": ws})),
        ("subscribers", "Subscribers", reverse("audience-subscribers", kwargs={"ws": ws})),
    ]
    if membership.has(p.AUDIENCE_MANAGE):
        items.append(("imports", "Imports", optional_url(ws, *IMPORTS)))
    items.append(("segments", "Segments", optional_url(ws, *SEGMENTS)))
    items.append(("suppression", "Suppression", reverse("audience-suppression", kwargs={"ws": ws})))
    if membership.has(p.AUDIENCE_EXPORT) and membership.has(p.VIEW_PERSONAL_DATA):
        items.append(("export", "Export", reverse("audience-export", kwargs={"ws": ws})))
    return [
        {"key": key, "label": label, "url": url, "current": key == current}
        for key, label, url in items
        if url
    ]


def _list_or_404(request, list_id: int):
    mailing_list = queries.get_list(request.workspace, list_id)
    if mailing_list is None:
        raise Http404("No such list in this workspace")
    return mailing_list


# -- lists -----------------------------------------------------------------------------------


def _lists_page(request, *, form=None, error: str = "", status: int = 200):
    ws = request.workspace.slug
    can_manage = request.membership.has(p.AUDIENCE_MANAGE)
    if can_manage and form is None:
        form = ListForm()
    context = {
        "subnav": audience_subnav(request, "lists"),
        "lists": queries.lists_with_counts(request.workspace),
        "form": form if can_manage else None,
        "can_manage": can_manage,
        "can_export": request.membership.has(p.AUDIENCE_EXPORT) and sees_personal_data(request),
        "imports_url": optional_url(ws, *IMPORTS) if can_manage else "",
        "segments_url": optional_url(ws, *SEGMENTS),
        "error": error,
    }
    return render(request, "audience/lists.html", context, status=status)


@workspace_view(p.AUDIENCE_VIEW)
@require_GET
def lists_home(request):
    return _lists_page(request)


@workspace_view(p.AUDIENCE_MANAGE)
@require_POST
def list_create(request):
    form = ListForm(request.POST)
    if not form.is_valid():
        return _lists_page(request, form=form, status=400)
    try:
        mailing_list = actions.do_create_list(
            request.workspace, actor=Actor.from_request(request), **form.cleaned_data
        )
    except ValidationError as exc:
        add_validation_error(form, exc)
        return _lists_page(request, form=form, status=400)
    except Conflict as exc:  # the slug is taken
        form.add_error("slug", str(exc))
        return _lists_page(request, form=form, status=409)
    except ActionError as exc:
        return _lists_page(request, form=form, error=str(exc), status=status_for(exc))
    messages.success(request, f"The list “{mailing_list.name}” was created.")
    return redirect("audience-home", ws=request.workspace.slug)


@workspace_view(p.AUDIENCE_MANAGE)
@require_http_methods(["GET", "POST"])
def list_edit(request, list_id: int):
    mailing_list = _list_or_404(request, list_id)
    status = 200
    if request.method == "POST":
        form = ListForm(request.POST)
        if form.is_valid():
            try:
                actions.do_update_list(
                    mailing_list, form.cleaned_data, actor=Actor.from_request(request)
                )
            except ValidationError as exc:
                add_validation_error(form, exc)
                status = 400
            except Conflict as exc:
                form.add_error("slug", str(exc))
                status = 409
            else:
                messages.success(request, f"The list “{mailing_list.name}” was saved.")
                return redirect("audience-home", ws=request.workspace.slug)
            # The action set the new values on the object before refusing them: read it back,
            # so the heading shows what is stored.
            mailing_list.refresh_from_db()
        else:
            status = 400
    else:
        form = ListForm(initial=ListForm.initial_for(mailing_list))
    context = {"subnav": audience_subnav(request, "lists"), "list": mailing_list, "form": form}
    return render(request, "audience/list_edit.html", context, status=status)


@workspace_view(p.AUDIENCE_MANAGE)
@require_http_methods(["GET", "POST"])
def list_delete(request, list_id: int):
    mailing_list = _list_or_404(request, list_id)
    if request.method == "POST":
        name = mailing_list.name
        actions.do_delete_list(mailing_list, actor=Actor.from_request(request))
        messages.success(request, f"The list “{name}” was deleted.")
        return redirect("audience-home", ws=request.workspace.slug)
    counts = next(
        ml for ml in queries.lists_with_counts(request.workspace) if ml.pk == mailing_list.pk
    )
    context = {"subnav": audience_subnav(request, "lists"), "list": counts}
    return render(request, "audience/list_delete.html", context)


# -- export ----------------------------------------------------------------------------------


def _export_form(request, data=None, **kwargs):
    return ExportForm(
        data,
        lists=queries.lists_of(request.workspace),
        segments=segments_for(request.workspace),
        **kwargs,
    )


def _export_page(request, form, *, error: str = "", status: int = 200):
    context = {"subnav": audience_subnav(request, "export"), "form": form, "error": error}
    return render(request, "audience/export.html", context, status=status)


@workspace_view(p.AUDIENCE_EXPORT)
@require_GET
def export_page(request):
    if not sees_personal_data(request):
        return forbidden(request, p.VIEW_PERSONAL_DATA)
    chosen = ""
    for kind in ("list", "segment"):
        if request.GET.get(kind, "").isdigit():
            chosen = f"{kind}:{request.GET[kind]}"
    return _export_page(request, _export_form(request, initial={"source": chosen}))


@workspace_view(p.AUDIENCE_EXPORT)
@require_POST
def export_download(request):
    """Streams the export: rows are read EXPORT_CHUNK at a time and written as they come, so
    memory stays flat whatever the size. The audit row is written before the first byte, so an
    export that is interrupted is on record too."""
    if not sees_personal_data(request):
        return forbidden(request, p.VIEW_PERSONAL_DATA)
    form = _export_form(request, request.POST)
    if not form.is_valid():
        return _export_page(request, form, status=400)
    source = form.chosen()
    fmt = form.cleaned_data["format"]
    is_list = isinstance(source, MailingList)
    if is_list:
        members = form.cleaned_data["members"]
        rows = queries.list_members_for_export(source, members)
        people = queries.list_member_subscribers(source, members)
        described = {"type": "list", "name": source.name, "slug": source.slug}
        filename = f"{source.slug}-{members}"
    else:
        members = "segment"
        try:
            people = segment_queryset(request.workspace, source.rules)
        except ActionError as exc:  # rules that no longer hold, e.g. a deleted list
            return _export_page(
                request, form, error=f"This segment cannot be exported: {exc}", status=400
            )
        rows = queries.subscribers_for_export(people)
        described = {"type": "segment", "name": source.name, "id": source.pk}
        filename = f"segment-{source.pk}"
    actions.record_audience_export(
        request.workspace,
        source=source,
        fmt=fmt,
        members=members,
        count=rows.count(),
        actor=Actor.from_request(request),
    )
    stream = rows.iterator(chunk_size=EXPORT_CHUNK)
    if fmt == "csv":
        keys = queries.attribute_keys_among(people, exporting.MAX_ATTRIBUTE_COLUMNS + 1)
        too_many = len(keys) > exporting.MAX_ATTRIBUTE_COLUMNS
        body = exporting.csv_rows(stream, None if too_many else keys, list_columns=is_list)
        content_type = "text/csv; charset=utf-8"
    else:
        body = exporting.json_rows(stream, source=described, members=members, list_columns=is_list)
        content_type = "application/json; charset=utf-8"
    response = StreamingHttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(
        True, f"{filename}-{now():%Y%m%d-%H%M}.{fmt}"
    )
    response["Cache-Control"] = "no-store"  # personal data: no cache may keep a copy
    return response
