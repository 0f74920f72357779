"""Writes to segments: one transaction and one audit row each. The audit row names the segment
and counts its conditions, never their values (a rule may hold an address)."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils.timezone import now

from mailmarketer.accounts.actions import ActionError, Conflict, audit
from mailmarketer.accounts.actors import Actor

from ..models import Segment
from .rules import count_conditions, validate_rules

NAME_MAX = 150
DESCRIPTION_MAX = 2000


def _name(name) -> str:
    if not isinstance(name, str):
        raise ActionError("give the segment a name (text)")
    name = name.strip()
    if not name:
        raise ActionError("give the segment a name")
    if len(name) > NAME_MAX:
        raise ActionError(f"the segment name is longer than {NAME_MAX} characters")
    return name


def _description(description) -> str:
    if description is None:
        return ""
    if not isinstance(description, str):
        raise ActionError("the segment description must be text")
    description = description.strip()
    if len(description) > DESCRIPTION_MAX:
        raise ActionError(f"the description is longer than {DESCRIPTION_MAX} characters")
    return description


def _refuse_duplicate(workspace, name: str, exclude_pk=None) -> None:
    others = Segment.objects.filter(workspace=workspace, name=name)
    if exclude_pk is not None:
        others = others.exclude(pk=exclude_pk)
    if others.exists():
        raise Conflict(f"a segment named {name!r} already exists")


@transaction.atomic
def do_create_segment(
    workspace, *, name: str, rules, description: str = "", actor: Actor
) -> Segment:
    name = _name(name)
    description = _description(description)
    rules = validate_rules(rules, workspace=workspace)
    _refuse_duplicate(workspace, name)
    try:
        with transaction.atomic():
            segment = Segment.objects.create(
                workspace=workspace,
                name=name,
                description=description,
                rules=rules,
                created_by=actor.user,
            )
    except IntegrityError:  # created by a concurrent request meanwhile
        raise Conflict(f"a segment named {name!r} already exists") from None
    audit(
        "segment.created",
        actor=actor,
        workspace=workspace,
        obj=segment,
        new={"name": name, "conditions": count_conditions(rules)},
    )
    return segment


@transaction.atomic
def do_update_segment(
    segment: Segment,
    *,
    name: str | None = None,
    description: str | None = None,
    rules=None,
    actor: Actor,
) -> Segment:
    # Everything is checked before the instance is touched, so a refusal leaves it as it was.
    changes = {}
    if name is not None and (name := _name(name)) != segment.name:
        _refuse_duplicate(segment.workspace, name, exclude_pk=segment.pk)
        changes["name"] = name
    if description is not None and (description := _description(description)) != (
        segment.description
    ):
        changes["description"] = description
    if rules is not None:
        rules = validate_rules(rules, workspace=segment.workspace)
        if rules != segment.rules:
            changes["rules"] = rules
    if not changes:
        return segment
    old_name = segment.name
    for key, value in changes.items():
        setattr(segment, key, value)
    segment.updated_at = now()
    try:
        with transaction.atomic():
            segment.save(update_fields=[*changes, "updated_at"])
    except IntegrityError:
        raise Conflict(f"a segment named {segment.name!r} already exists") from None
    new = {"fields": list(changes), "conditions": count_conditions(segment.rules)}
    if "name" in changes:
        new["name"] = segment.name
    audit(
        "segment.updated",
        actor=actor,
        workspace=segment.workspace,
        obj=segment,
        old={"name": old_name} if "name" in changes else None,
        new=new,
    )
    return segment


@transaction.atomic
def do_delete_segment(segment: Segment, *, actor: Actor) -> None:
    audit(
        "segment.deleted",
        actor=actor,
        workspace=segment.workspace,
        obj=segment,
        old={"name": segment.name, "conditions": count_conditions(segment.rules)},
    )
    segment.delete()
