"""Leads (docs/leads.md): what an `evaluation` form makes, and the one writer of a lead's
status, assignee and notes.

A submission of an evaluation form creates a lead in the submission's transaction
(`create_lead`), with a "created" history row; the staff notification is queued once it
commits (tasks.notify_new_lead), to the form's assignee or its chosen recipients, with no
personal data in the subject. Every later change goes through `do_update_lead`: the status only
along Lead.TRANSITIONS, the assignee only a member of the workspace, each change one LeadEvent
(who, when, old, new) and an audit row.
"""

from __future__ import annotations

import re

from django.db import transaction
from django.utils.timezone import now

from mailmarketer.accounts.actions import audit
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import Membership

from .fields import CONTROL, FormError
from .models import Form, Submission
from .models_leads import MESSAGE_LIMIT, NOTES_LIMIT, EvaluationSetup, Lead, LeadEvent

# The keys an evaluation form posts besides its fields.
PRODUCT, MESSAGE = "product", "message"
EXTRA_KEYS = frozenset({PRODUCT, MESSAGE})
MAX_PRODUCTS = 30
# A message may have line breaks and tabs; no other control character (PostgreSQL cannot
# store NUL, and the others have no place in a message to staff).
MESSAGE_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

TEXTS = {
    "en": {
        "product": "Product or plan",
        "message": "Message",
        "choose": "Choose one of the options offered.",
        "required": "This field is required.",
        "too_long": "This is too long (at most {limit} characters).",
        "control": "This contains characters that cannot be stored (control characters).",
        "consent": "I agree (optional: tick to also receive what the notice describes)",
        "submit": "Send request",
    },
    "de": {
        "product": "Produkt oder Tarif",
        "message": "Nachricht",
        "choose": "Bitte wählen Sie eine der angebotenen Optionen.",
        "required": "Dieses Feld ist erforderlich.",
        "too_long": "Das ist zu lang (höchstens {limit} Zeichen).",
        "control": "Dies enthält Zeichen, die nicht gespeichert werden können (Steuerzeichen).",
        "consent": "Ich stimme zu (freiwillig: ankreuzen, um auch das Beschriebene zu erhalten)",
        "submit": "Anfrage senden",
    },
}


def words(language: str) -> dict:
    return TEXTS.get(language, TEXTS["en"])


# -- the form's setup ------------------------------------------------------------------------


def clean_products(raw) -> list[str]:
    if isinstance(raw, str):
        raw = raw.splitlines()
    if not isinstance(raw, list):
        raise FormError("products", "products: a list of product or plan names")
    products = [str(p).strip()[:200] for p in raw if str(p).strip()]
    if not products or len(products) > MAX_PRODUCTS:
        raise FormError("products", f"products: from 1 to {MAX_PRODUCTS} products or plans")
    if len(set(products)) != len(products):
        raise FormError("products", "products: each name once")
    if any(CONTROL.search(p) for p in products):
        raise FormError("products", "products: no control characters")
    return products


def _member_user(workspace, user_id, field: str):
    if user_id in (None, ""):
        return None
    try:
        user_id = int(user_id)
    except (TypeError, ValueError):
        raise FormError(field, f"{field}: not a member of this workspace") from None
    membership = (
        Membership.objects.filter(workspace=workspace, user_id=user_id)
        .select_related("user")
        .first()
    )
    if membership is None:
        raise FormError(field, f"{field}: not a member of this workspace", code="not_found")
    return membership.user


@transaction.atomic
def do_set_evaluation(form: Form, *, products, assignee=None, recipients=(), actor: Actor):
    """The products an evaluation form offers, the teammate its leads go to, and who is mailed
    when nobody is assigned (user ids of members)."""
    products = clean_products(products)
    user = _member_user(form.workspace, assignee, "assignee")
    recipient_ids = sorted({_member_user(form.workspace, r, "recipients").pk for r in recipients})
    setup = EvaluationSetup.objects.filter(form=form).first() or EvaluationSetup(
        workspace=form.workspace, form=form
    )
    setup.products, setup.assignee, setup.recipients = products, user, recipient_ids
    setup.save()
    audit(
        "form.evaluation_set",
        actor=actor,
        workspace=form.workspace,
        obj=form,
        new={
            "products": products,
            "assignee": user.pk if user else None,
            "recipients": recipient_ids,
        },
    )
    return setup


def setup_of(form: Form) -> EvaluationSetup | None:
    return EvaluationSetup.objects.filter(form=form).select_related("assignee").first()


# -- reading what a person sent --------------------------------------------------------------


def read_lead_fields(form: Form, data, language: str) -> tuple[dict, dict]:
    """The product and message of an evaluation request: (values, errors by field)."""
    w = words(language)
    setup = setup_of(form)
    products = setup.products if setup else []
    values, errors = {}, {}

    def one(key):
        if hasattr(data, "getlist"):
            got = data.getlist(key)
            return got[-1] if got else None
        return data.get(key)

    product = one(PRODUCT)
    product = product.strip() if isinstance(product, str) else None
    if not product:
        errors[PRODUCT] = w["required"]
    elif product not in products:
        errors[PRODUCT] = w["choose"]
    else:
        values[PRODUCT] = product
    message = one(MESSAGE)
    if message is not None and not isinstance(message, str):
        errors[MESSAGE] = w["required"]
    else:
        message = (message or "").strip()
        if len(message) > MESSAGE_LIMIT:
            errors[MESSAGE] = w["too_long"].format(limit=MESSAGE_LIMIT)
        elif MESSAGE_CONTROL.search(message):
            errors[MESSAGE] = w["control"]
        else:
            values[MESSAGE] = message.replace("\r\n", "\n")
    return values, errors


# -- writes ----------------------------------------------------------------------------------


def _event(lead: Lead, actor: Actor, field: str, old: str, new: str) -> None:
    LeadEvent.objects.create(
        workspace_id=lead.workspace_id,
        lead=lead,
        actor=actor.label[:200],
        field=field,
        old=old,
        new=new,
    )


def create_lead(form: Form, submission: Submission, subscriber, extra: dict) -> Lead:
    """Inside the submission's transaction: the lead, its first history row, and its
    notification queued for after the commit."""
    setup = setup_of(form)
    actor = Actor.system(f"form {form.slug}")
    lead = Lead.objects.create(
        workspace=form.workspace,
        subscriber=subscriber,
        form=form,
        submission=submission,
        product=extra.get(PRODUCT, ""),
        company=str(extra.get("company") or "")[:200],
        message=extra.get(MESSAGE, ""),
        assignee=setup.assignee if setup else None,
    )
    _event(lead, actor, "created", "", Lead.Status.NEW)
    audit(
        "lead.created",
        actor=actor,
        workspace=form.workspace,
        obj=lead,
        new={"form": form.pk, "product": lead.product, "subscriber": str(subscriber.uuid)},
    )
    from . import tasks

    lead_id = lead.pk
    transaction.on_commit(lambda: tasks.notify_new_lead.enqueue(lead_id))
    return lead


UNSET = object()


@transaction.atomic
def do_update_lead(lead: Lead, *, status=None, assignee=UNSET, notes=None, actor: Actor) -> Lead:
    """The one writer of a lead after it was made. `assignee` is a user id (or None to
    unassign); a status must be a move Lead.TRANSITIONS allows."""
    lead = Lead.objects.select_for_update().get(pk=lead.pk)
    changes = []
    if status is not None and status != lead.status:
        if status not in Lead.Status.values:
            raise FormError("status", f"status: unknown status {str(status)[:30]!r}")
        allowed = Lead.TRANSITIONS[Lead.Status(lead.status)]
        if status not in allowed:
            choices = ", ".join(sorted(allowed)) or "none (it is final)"
            raise FormError(
                "status",
                f"status: a {lead.status} lead cannot become {status} (allowed: {choices})",
                code="invalid_transition",
            )
        changes.append(("status", lead.status, status))
        lead.status = status
    if assignee is not UNSET:
        user = _member_user(lead.workspace, assignee, "assignee")
        if (user.pk if user else None) != lead.assignee_id:
            old = lead.assignee.email if lead.assignee else ""
            changes.append(("assignee", old, user.email if user else ""))
            lead.assignee = user
    if notes is not None:
        if not isinstance(notes, str):
            raise FormError("notes", "notes: text")
        notes = notes.replace("\r\n", "\n").strip()
        if len(notes) > NOTES_LIMIT:
            raise FormError("notes", f"notes: at most {NOTES_LIMIT} characters")
        if "\x00" in notes:
            raise FormError("notes", "notes: no NUL characters")
        if notes != lead.notes:
            changes.append(("notes", lead.notes, notes))
            lead.notes = notes
    if not changes:
        return lead
    lead.updated_at = now()
    lead.save()
    for field, old, new in changes:
        _event(lead, actor, field, old, new)
    audit(
        "lead.updated",
        actor=actor,
        workspace=lead.workspace,
        obj=lead,
        # Notes may name people: the audit row says they changed, the history keeps them.
        old={f: (o if f != "notes" else "…") for f, o, _ in changes},
        new={f: (n if f != "notes" else "…") for f, _, n in changes},
    )
    return lead


def record_lead_viewed(lead: Lead, *, actor: Actor) -> None:
    """A look at a lead's personal data, unmasked: audited like a subscriber's page."""
    audit("lead.viewed", actor=actor, workspace=lead.workspace, obj=lead)


def record_leads_listed(workspace, count: int, *, actor: Actor) -> None:
    if count:
        audit("leads.listed", actor=actor, workspace=workspace, new={"count": count})


def register_personal_data() -> None:
    """Export and erasure of a person's leads (their history goes with them: signup/apps.py)."""
    from mailmarketer.audience import personal_data

    personal_data.register(
        Lead,
        section="leads",
        export=lambda subscriber: personal_data.rows_as_dicts(
            Lead.objects.filter(subscriber=subscriber).order_by("created_at", "pk"),
            ["created_at", "product", "company", "message", "status", "notes"],
        ),
    )
