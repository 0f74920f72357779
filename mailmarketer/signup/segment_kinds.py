"""Segment conditions on what the signup package records (docs/resources.md, docs/leads.md),
registered with audience.segments from SignupConfig.ready:

    {"type": "downloaded", "resource": <resource id>, "member": true | false}
        has (or has not) downloaded the resource through a download link
    {"type": "lead", "status": "new" | "contacted" | "qualified" | "disqualified" | "any",
     "member": true | false}
        has (or has not) a lead (an evaluation request) in that status

Each compiles to a workspace-scoped EXISTS, so "member": false is its exact complement.
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q

from mailmarketer.audience.segments import ConditionKind, register_kind
from mailmarketer.audience.segments.rules import check_keys, choice, fail, number

from .models_leads import Lead
from .models_resources import Resource, ResourceDownload

LEAD_STATUSES = ("any", *Lead.Status.values)


def _member(node: dict, path: str) -> bool:
    member = node.get("member", True)
    if not isinstance(member, bool):
        fail(f"{path}.member", f"expected true or false, got {member!r}")
    return member


def validate_downloaded(node: dict, path: str, context) -> dict:
    check_keys(node, path, {"type", "resource", "member"})
    resource_id = node.get("resource")
    if resource_id is None:
        fail(f"{path}.resource", "missing; give the id of a resource")
    number(resource_id, f"{path}.resource", integer=True, minimum=1)
    if (
        context.workspace is not None
        and not Resource.objects.filter(workspace=context.workspace, pk=resource_id).exists()
    ):
        fail(f"{path}.resource", f"no resource with id {resource_id} in this workspace")
    return {"resource": resource_id, "member": _member(node, path)}


def compile_downloaded(node: dict, context) -> Q:
    exists = Exists(
        ResourceDownload.objects.filter(
            workspace_id=context.workspace.pk,
            resource_id=node["resource"],
            subscriber_id=OuterRef("pk"),
        )
    )
    return Q(exists) if node["member"] else ~Q(exists)


def describe_downloaded(node: dict, lookups: dict) -> str:
    verb = "Downloaded" if node["member"] else "Did not download"
    return f"{verb} the resource #{node['resource']}"


def validate_lead(node: dict, path: str, context) -> dict:
    check_keys(node, path, {"type", "status", "member"})
    status = choice(node, "status", path, LEAD_STATUSES, "lead status", default="any")
    return {"status": status, "member": _member(node, path)}


def compile_lead(node: dict, context) -> Q:
    rows = Lead.objects.filter(workspace_id=context.workspace.pk, subscriber_id=OuterRef("pk"))
    if node["status"] != "any":
        rows = rows.filter(status=node["status"])
    exists = Exists(rows)
    return Q(exists) if node["member"] else ~Q(exists)


def describe_lead(node: dict, lookups: dict) -> str:
    status = "" if node["status"] == "any" else f" ({node['status']})"
    return ("Asked for an evaluation" if node["member"] else "Never asked for an evaluation") + (
        status
    )


def register() -> None:
    register_kind(
        ConditionKind(
            "downloaded",
            "Downloaded a resource",
            validate_downloaded,
            compile_downloaded,
            describe_downloaded,
        )
    )
    register_kind(
        ConditionKind("lead", "Evaluation request", validate_lead, compile_lead, describe_lead)
    )
