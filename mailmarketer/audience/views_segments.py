"""Segment pages: the list (with counts), the rule builder with a live count, and deletion.

Each view names its one permission: looking (the list, a segment, its count, a count of rules
being edited) needs audience.view; creating, changing and deleting need audience.manage, each
on its own route. The builder is a plain form (segments/builder.py) that works without
JavaScript; htmx swaps the rule tree in place on each edit and refreshes the count as the form
changes. A segment named in a URL is looked up inside request.workspace, so another
workspace's id is a 404.

Counts are not personal data, so analysts may count saved segments (saved by someone who may
see what they test); but counting a draft that compares an address, a name or an attribute's
value would tell them, one guess at a time, what a person's data is, so that needs
audience.view_personal_data too (a domain, "ends with @example.com", an attribute's existence,
status, dates and lists do not; segments.kinds.tests_personal_data decides).
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import workspace_view
from mailmarketer.accounts.actions import ActionError, Conflict
from mailmarketer.accounts.actors import Actor

from .models import MailingList
from .segments import SegmentRuleError, count_segment, validate_rules
from .segments import actions as segment_actions
from .segments.builder import (
    FormError,
    apply_edit,
    builder_tree,
    empty_rules,
    personal_conditions,
    place_error,
    rules_from_form,
    summary,
)
from .segments.kinds import ATTRIBUTE_OPS, FIELDS, LIST_STATUSES, VALUE_TYPES
from .segments.queries import get_segment, segments_for
from .views_lists import audience_subnav

PERSONAL_DATA_REFUSAL = (
    "Counting by address, name or an attribute's value needs permission to see personal data "
    "({paths}); an email domain (ends with @example.com), whether an attribute exists, status, "
    "dates and lists are fine."
)


def _segment_or_404(request, segment_id):
    segment = get_segment(request.workspace, segment_id)
    if segment is None:
        raise Http404("No such segment in this workspace")
    return segment


def _lists(workspace) -> list[MailingList]:
    return list(MailingList.objects.filter(workspace=workspace).order_by("name", "pk"))


def _is_htmx(request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _count(workspace, rules) -> tuple[int | None, str, SegmentRuleError | None]:
    """(count, message, error): the rules are checked against the workspace first."""
    try:
        rules = validate_rules(rules, workspace=workspace)
    except SegmentRuleError as exc:
        return None, exc.message, exc
    return count_segment(workspace, rules), "", None


# -- list -----------------------------------------------------------------------------------------


@workspace_view(p.AUDIENCE_VIEW)
@require_GET
def segment_list(request):
    return render(
        request,
        "audience/segment_list.html",
        {
            "segments": segments_for(request.workspace),
            "can_manage": request.membership.has(p.AUDIENCE_MANAGE),
            "subnav": audience_subnav(request, "segments"),
        },
    )


@workspace_view(p.AUDIENCE_VIEW)
@require_GET
def segment_count(request, segment_id: int):
    """The count of a saved segment, as a fragment (the list page loads one per row)."""
    segment = _segment_or_404(request, segment_id)
    count, error, _ = _count(request.workspace, segment.rules)
    return render(request, "audience/segment_count.html", {"count": count, "count_error": error})


@workspace_view(p.AUDIENCE_VIEW)
@require_POST
def segment_count_draft(request):
    """The count of rules being edited, as a fragment. Takes the builder's form fields, or the
    rule JSON as the request body (application/json) or in a `rules` field."""
    try:
        if request.content_type == "application/json":
            rules = json.loads(request.body or b"null")
        elif "rules" in request.POST:
            rules = json.loads(request.POST["rules"])
        else:
            rules, _ = rules_from_form(request.POST)
    except FormError as exc:
        return render(request, "audience/segment_count.html", {"count_error": str(exc)})
    except ValueError as exc:
        error = f"rules: not valid JSON ({exc})"
        return render(request, "audience/segment_count.html", {"count_error": error})
    count, error = None, ""
    try:
        checked = validate_rules(rules, workspace=request.workspace)
    except SegmentRuleError as exc:
        if isinstance(rules, dict) and isinstance(rules.get("root"), dict):
            error = place_error(builder_tree(rules), exc)
        else:
            error = str(exc)
    else:
        personal = personal_conditions(checked)
        if personal and not request.membership.has(p.VIEW_PERSONAL_DATA):
            error = PERSONAL_DATA_REFUSAL.format(paths=", ".join(personal))
        else:
            count = count_segment(request.workspace, checked)
    return render(request, "audience/segment_count.html", {"count": count, "count_error": error})


# -- builder --------------------------------------------------------------------------------------


def _builder_page(
    request,
    *,
    segment,
    rules,
    name,
    description,
    focus=None,
    show_errors=False,
    with_count=True,
    error="",
    status=200,
):
    lists = _lists(request.workspace)
    tree = builder_tree(rules, lists, focus)
    count, count_error = None, ""
    if with_count or show_errors:
        try:
            checked = validate_rules(rules, workspace=request.workspace)
        except SegmentRuleError as exc:
            count_error = place_error(tree, exc)
            if not show_errors:
                for node in _all(tree):
                    node.error = ""
        else:
            if with_count:
                count = count_segment(request.workspace, checked)
    action_url = (
        reverse("segment-edit", kwargs={"ws": request.workspace.slug, "segment_id": segment.pk})
        if segment
        else reverse("segment-new", kwargs={"ws": request.workspace.slug})
    )
    context = {
        "subnav": audience_subnav(request, "segments"),
        "segment": segment,
        "tree": tree,
        "name": name,
        "description": description,
        "action_url": action_url,
        "count": count,
        "count_error": count_error,
        "count_pending": not with_count,
        "error": error,
        "lists": lists,
        "list_ids": [str(item.pk) for item in lists],
        "fields": [(key, spec["label"]) for key, spec in FIELDS.items()],
        "value_types": VALUE_TYPES,
        "list_statuses": LIST_STATUSES,
        "attribute_ops": ATTRIBUTE_OPS,
        "rules_json": json.dumps(rules, indent=2),
    }
    response = render(request, "audience/segment_builder.html", context, status=status)
    if _is_htmx(request):
        response["HX-Trigger"] = "rules-changed"
    return response


def _all(tree):
    yield tree
    for child in tree.children:
        yield from _all(child)


def _builder_post(request, segment):
    name = request.POST.get("name", "")
    description = request.POST.get("description", "")
    edit = request.POST.get("edit", "refresh")
    page = {"segment": segment, "name": name, "description": description}
    try:
        rules, nodes = rules_from_form(request.POST)
    except FormError as exc:
        rules = segment.rules if segment else empty_rules()
        return _builder_page(request, rules=rules, error=str(exc), status=400, **page)
    if edit != "save":
        try:
            added, refusal = apply_edit(rules, nodes, edit, _lists(request.workspace))
        except FormError as exc:
            return _builder_page(request, rules=rules, error=str(exc), status=400, **page)
        # An edit made in place (htmx) leaves the count to the count endpoint, which the
        # page asks for once the tree is swapped; a full page (no JavaScript) counts here.
        return _builder_page(
            request,
            rules=rules,
            focus=added,
            error=refusal,
            show_errors=edit == "refresh",
            with_count=not _is_htmx(request),
            **page,
        )
    actor = Actor.from_request(request)
    try:
        if segment is None:
            segment = segment_actions.do_create_segment(
                request.workspace, name=name, description=description, rules=rules, actor=actor
            )
        else:
            segment_actions.do_update_segment(
                segment, name=name, description=description, rules=rules, actor=actor
            )
    except SegmentRuleError:
        return _builder_page(
            request, rules=rules, show_errors=True, with_count=False, status=400, **page
        )
    except ActionError as exc:
        return _builder_page(
            request,
            rules=rules,
            error=str(exc)[:1].upper() + str(exc)[1:] + ".",
            status=409 if isinstance(exc, Conflict) else 400,
            **page,
        )
    messages.success(request, f"Segment “{segment.name}” saved.")
    return redirect("segment", ws=request.workspace.slug, segment_id=segment.pk)


@workspace_view(p.AUDIENCE_MANAGE)
@require_http_methods(["GET", "POST"])
def segment_new(request):
    if request.method == "POST":
        return _builder_post(request, None)
    return _builder_page(request, segment=None, rules=empty_rules(), name="", description="")


@workspace_view(p.AUDIENCE_VIEW)
@require_GET
def segment_detail(request, segment_id: int):
    """The builder for those who may edit; a read-only summary with its count for others."""
    segment = _segment_or_404(request, segment_id)
    if request.membership.has(p.AUDIENCE_MANAGE):
        return _builder_page(
            request,
            segment=segment,
            rules=segment.rules,
            name=segment.name,
            description=segment.description,
        )
    lists = {pk: name for pk, name in _lists_names(request.workspace)}
    count, count_error, _ = _count(request.workspace, segment.rules)
    return render(
        request,
        "audience/segment_detail.html",
        {
            "segment": segment,
            "summary": summary(
                segment.rules,
                lists=lists,
                reveal=request.membership.has(p.VIEW_PERSONAL_DATA),
            ),
            "count": count,
            "count_error": count_error,
            "subnav": audience_subnav(request, "segments"),
        },
    )


def _lists_names(workspace):
    return MailingList.objects.filter(workspace=workspace).values_list("pk", "name")


@workspace_view(p.AUDIENCE_MANAGE)
@require_POST
def segment_edit(request, segment_id: int):
    return _builder_post(request, _segment_or_404(request, segment_id))


@workspace_view(p.AUDIENCE_MANAGE)
@require_http_methods(["GET", "POST"])
def segment_delete(request, segment_id: int):
    segment = _segment_or_404(request, segment_id)
    if request.method == "POST":
        name = segment.name
        segment_actions.do_delete_segment(segment, actor=Actor.from_request(request))
        messages.success(request, f"Segment “{name}” deleted.")
        return redirect("segment-list", ws=request.workspace.slug)
    return render(
        request,
        "audience/segment_delete.html",
        {"segment": segment, "subnav": audience_subnav(request, "segments")},
    )
