"""Every write to the audience: one transaction each, an audit row each (naming subscribers by
uuid only), suppression checked by every path that adds or subscribes a person."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils.timezone import now

from mailmarketer.accounts.actions import ActionError, Conflict, audit
from mailmarketer.accounts.actors import Actor
from mailmarketer.lib.text import nul_in, one_line_problem

from . import personal_data
from .emails import InvalidEmail, email_key, normalise_email, suppression_hash
from .models import (
    ConsentNotice,
    ConsentRecord,
    MailingList,
    Reconsent,
    Subscriber,
    Subscription,
    Suppression,
    display_name,
)
from .queries import latest_tracking_record
from .subscribing import (
    CHANGED,
    RECONSENT_REASONS,
    Person,
    Result,
    Terms,
    confirm_reconsent,
    open_reconsent,
    record_tracking_consent,
    subscribe_people,
)

Status = Subscription.Status
Reason = Subscription.Reason


class Suppressed(ActionError):
    code = "suppressed"


class Blocklisted(ActionError):
    code = "blocklisted"


@dataclass(frozen=True)
class ConsentSource:
    """How a consent record came to be: which form, import, token or staff member, and the
    person's IP and browser where the workspace keeps them."""

    type: str  # ConsentRecord.SourceType
    id: str = ""
    label: str = ""
    ip: str | None = None
    user_agent: str = ""

    def terms(self, *, reason: str, **more) -> Terms:
        """subscribing.Terms with this source."""
        return Terms(
            self.type,
            reason,
            source_id=self.id,
            source_label=self.label,
            ip=self.ip,
            user_agent=self.user_agent or "",
            **more,
        )

    @classmethod
    def for_actor(cls, actor: Actor) -> ConsentSource:
        if actor.token is not None:
            return cls(ConsentRecord.SourceType.API, str(actor.token.pk), actor.label)
        if actor.user is not None:
            return cls(ConsentRecord.SourceType.ADMIN, str(actor.user.pk), actor.label)
        return cls(ConsentRecord.SourceType.SYSTEM, "", actor.label)


def valid_email(raw: str) -> str:
    try:
        return normalise_email(raw)
    except InvalidEmail as exc:
        raise ActionError(f"invalid email address: {exc}", code="invalid_email") from None


def suppression_for(workspace, email: str) -> Suppression | None:
    return Suppression.objects.filter(
        workspace=workspace, email_hash=suppression_hash(email)
    ).first()


def _refuse_if_suppressed(workspace, email: str) -> None:
    suppression = suppression_for(workspace, email)
    if suppression is not None:
        raise _suppressed(suppression.reason)


def _suppressed(reason: str) -> Suppressed:
    label = Suppression.Reason(reason).label.lower() if reason in Suppression.Reason else reason
    return Suppressed(
        f"this address is on the suppression list ({label}) and cannot be added or subscribed"
    )


def _same_address(workspace_id: int, email: str):
    """The workspace's subscribers with this address, whatever its case."""
    return Subscriber.objects.filter(workspace_id=workspace_id, email_key=email_key(email))


# -- notices ---------------------------------------------------------------------------------


def notice_for_text(workspace, name: str, text: str) -> ConsentNotice:
    """The notice with exactly these words, making a new version when the words are new."""
    text = text.strip()
    if not text:
        raise ActionError("the consent notice text is empty", code="notice_required")
    digest = ConsentNotice.hash_text(text)
    existing = ConsentNotice.objects.filter(workspace=workspace, name=name, sha256=digest).first()
    if existing:
        return existing
    with transaction.atomic():
        latest = (
            ConsentNotice.objects.filter(workspace=workspace, name=name)
            .order_by("-version")
            .values_list("version", flat=True)
            .first()
        )
        try:
            with transaction.atomic():
                return ConsentNotice.objects.create(
                    workspace=workspace,
                    name=name,
                    version=(latest or 0) + 1,
                    text=text,
                    sha256=digest,
                )
        except IntegrityError:  # made by a concurrent request meanwhile
            return ConsentNotice.objects.get(workspace=workspace, name=name, sha256=digest)


# -- lists -----------------------------------------------------------------------------------

LIST_EDITABLE = ("name", "slug", "description", "visibility", "optin", "tags")


@transaction.atomic
def do_create_list(workspace, *, actor: Actor, **fields) -> MailingList:
    unknown = set(fields) - set(LIST_EDITABLE)
    if unknown:
        raise ActionError(f"unknown list fields: {', '.join(sorted(unknown))}")
    mailing_list = MailingList(workspace=workspace, **fields)
    mailing_list.full_clean(exclude=["workspace"])
    if MailingList.objects.filter(workspace=workspace, slug=mailing_list.slug).exists():
        raise Conflict(f"a list with the slug {mailing_list.slug!r} already exists")
    mailing_list.save()
    audit(
        "list.created",
        actor=actor,
        workspace=workspace,
        obj=mailing_list,
        new={k: getattr(mailing_list, k) for k in LIST_EDITABLE},
    )
    return mailing_list


@transaction.atomic
def do_update_list(mailing_list: MailingList, changes: dict, *, actor: Actor) -> MailingList:
    unknown = set(changes) - set(LIST_EDITABLE)
    if unknown:
        raise ActionError(f"unknown list fields: {', '.join(sorted(unknown))}")
    old = {k: getattr(mailing_list, k) for k in changes}
    for key, value in changes.items():
        setattr(mailing_list, key, value)
    mailing_list.full_clean(exclude=["workspace"])
    if (
        "slug" in changes
        and MailingList.objects.filter(
            workspace_id=mailing_list.workspace_id, slug=mailing_list.slug
        )
        .exclude(pk=mailing_list.pk)
        .exists()
    ):
        raise Conflict(f"a list with the slug {mailing_list.slug!r} already exists")
    diff = {k: v for k, v in old.items() if v != changes[k]}
    if diff:
        mailing_list.save(update_fields=list(diff))
        audit(
            "list.updated",
            actor=actor,
            workspace=mailing_list.workspace,
            obj=mailing_list,
            old=diff,
            new={k: changes[k] for k in diff},
        )
    return mailing_list


@transaction.atomic
def do_delete_list(mailing_list: MailingList, *, actor: Actor) -> None:
    audit(
        "list.deleted",
        actor=actor,
        workspace=mailing_list.workspace,
        obj=mailing_list,
        old={"name": mailing_list.name, "slug": mailing_list.slug},
    )
    mailing_list.delete()


# -- subscribers -----------------------------------------------------------------------------


def _clean_name(name, field: str = "name", limit: int = 200) -> str:
    """A subscriber's name (or first or last name): one line (the name is the display name of
    the To header, and the others make it)."""
    if name is not None and not isinstance(name, str):
        raise ActionError(f"{field.replace('_', ' ')} must be text", field=field)
    name = (name or "").strip()[:limit]
    problem = one_line_problem(name)
    if problem:
        raise ActionError(f"{field.replace('_', ' ')} {problem}", field=field)
    return name


def _non_finite(value) -> bool:
    # NaN and infinities (JSON's NaN, Infinity, 1e999) are not JSON: SQLite's JSON check and
    # PostgreSQL's jsonb refuse them when stored.
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_non_finite(v) for v in value)
    return False


def _clean_attributes(attributes) -> dict:
    if attributes is None:
        return {}
    if not isinstance(attributes, dict):
        raise ActionError("attributes must be an object of names to values", code="invalid")
    for key, value in attributes.items():
        if not isinstance(key, str) or not key.strip() or len(key) > 100:
            raise ActionError(f"invalid attribute name {key!r}", code="invalid")
        problem = one_line_problem(key)
        if problem:
            raise ActionError(f"the attribute name {key!r} {problem}", field="attributes")
        where = f"attributes.{key}"
        if _non_finite(value):
            raise ActionError(f"{where} must be a finite number (not NaN or infinity)", field=where)
        nul = nul_in(value, where)
        if nul:
            raise ActionError(f"{nul} must not contain a NUL character", field=nul)
    return attributes


@transaction.atomic
def do_create_subscriber(
    workspace,
    *,
    email: str,
    name: str = "",
    attributes: dict | None = None,
    source: str = Subscriber.Source.ADMIN,
    actor: Actor,
    pending_reconsent: bool = False,
    first_name: str = "",
    last_name: str = "",
) -> Subscriber:
    """`pending_reconsent`: a form keeping a record of an address suppressed as erased or
    unsubscribed from everything (subscribing.RECONSENT_REASONS), to mail it a confirmation:
    the suppression stays until the person confirms (do_confirm_reconsent).

    The name shown is `name` when given, else made from `first_name` and `last_name`."""
    email = valid_email(email)
    first_name = _clean_name(first_name, "first_name", 100)
    last_name = _clean_name(last_name, "last_name", 100)
    suppression = suppression_for(workspace, email)
    if suppression is not None and not (
        pending_reconsent and suppression.reason in RECONSENT_REASONS
    ):
        raise _suppressed(suppression.reason)
    if _same_address(workspace.pk, email).exists():
        raise Conflict("a subscriber with this email address already exists")
    subscriber = Subscriber(
        workspace=workspace,
        email=email,
        name=_clean_name(name) or display_name(first_name, last_name),
        first_name=first_name,
        last_name=last_name,
        attributes=_clean_attributes(attributes),
        source=source,
    )
    try:
        with transaction.atomic():
            subscriber.save()
    except IntegrityError:
        raise Conflict("a subscriber with this email address already exists") from None
    audit(
        "subscriber.created",
        actor=actor,
        workspace=workspace,
        obj=subscriber,
        new={"source": source, **({"pending_reconsent": True} if suppression else {})},
    )
    return subscriber


@transaction.atomic
def do_update_subscriber(
    subscriber: Subscriber,
    *,
    email: str | None = None,
    name: str | None = None,
    attributes: dict | None = None,
    merge_attributes: bool = True,
    actor: Actor,
    first_name: str | None = None,
    last_name: str | None = None,
) -> Subscriber:
    """Fields given as None stay as they are. A new first or last name without a `name` makes
    the name shown anew from the two (display_name)."""
    changed = []
    if email is not None:
        email = valid_email(email)
        if email != subscriber.email:
            # A change of case only is the same person's address, typed differently.
            if email_key(email) != subscriber.email_key:
                _refuse_if_suppressed(subscriber.workspace, email)
            if _same_address(subscriber.workspace_id, email).exclude(pk=subscriber.pk).exists():
                raise Conflict("another subscriber already has this email address")
            subscriber.email = email
            changed.append("email")
    parts = {"first_name": first_name, "last_name": last_name}
    for part, value in parts.items():
        if value is not None and _clean_name(value, part, 100) != getattr(subscriber, part):
            setattr(subscriber, part, _clean_name(value, part, 100))
            changed.append(part)
    if name is None and {"first_name", "last_name"} & set(changed):
        name = display_name(subscriber.first_name, subscriber.last_name, subscriber.name)
    if name is not None and _clean_name(name) != subscriber.name:
        subscriber.name = _clean_name(name)
        changed.append("name")
    if attributes is not None:
        attributes = _clean_attributes(attributes)
        new = {**subscriber.attributes, **attributes} if merge_attributes else attributes
        if new != subscriber.attributes:
            subscriber.attributes = new
            changed.append("attributes")
    if changed:
        subscriber.updated_at = now()
        subscriber.save(update_fields=[*changed, "updated_at"])
        # Field names only: the values are personal data and the audit log is append-only.
        audit(
            "subscriber.updated",
            actor=actor,
            workspace=subscriber.workspace,
            obj=subscriber,
            new={"fields": changed},
        )
    return subscriber


def _record(
    subscriber,
    mailing_list,
    action,
    source: ConsentSource,
    notice=None,
    confirmed_at=None,
    purpose=None,
) -> ConsentRecord:
    keep_ip = subscriber.workspace.consent_store_ip
    return ConsentRecord.objects.create(
        workspace_id=subscriber.workspace_id,
        subscriber=subscriber,
        purpose=purpose or f"email:{mailing_list.slug}",
        mailing_list=mailing_list,
        action=action,
        notice=notice,
        source_type=source.type,
        source_id=source.id[:64],
        source_label=source.label[:200],
        ip=source.ip if keep_ip else None,
        user_agent=(source.user_agent or "")[:400] if keep_ip else "",
        confirmed_at=confirmed_at,
    )


def do_record_consent(
    subscriber: Subscriber,
    *,
    purpose: str,
    source: ConsentSource,
    notice: ConsentNotice | None = None,
    action: str = ConsentRecord.Action.GRANT,
) -> ConsentRecord:
    """A consent record for a purpose that is not a list (a webinar registration,
    "webinar:<event id>"), with the notice the person was shown. List purposes ("email:...")
    are written only by subscribing, with the membership they rest on. The audit row is the
    caller's, as for subscribing."""
    if not purpose or purpose.startswith("email:") or len(purpose) > 80:
        raise ActionError(f"not a consent purpose outside lists: {purpose[:80]!r}", field="purpose")
    return _record(subscriber, None, action, source, notice=notice, purpose=purpose)


@dataclass
class SubscribeOutcome:
    mailing_list: MailingList
    result: str  # "subscribed", "pending_confirmation", "already", "unsubscribed_kept"


@transaction.atomic
def do_subscribe(
    subscriber: Subscriber,
    lists,
    *,
    actor: Actor,
    reason: str,
    source: ConsentSource | None = None,
    notice: ConsentNotice | None = None,
    confirmed: bool | None = None,
    resubscribe: bool = False,
) -> list[SubscribeOutcome]:
    """Subscribe to lists. `confirmed=None` follows each list's opt-in (double -> unconfirmed);
    True records that consent is already confirmed (staff or an import stating so).
    `resubscribe` lets the person themselves (or staff) renew an unsubscribed membership, with
    a new grant in the consent ledger; an import or bulk call leaves unsubscribed members
    alone. The decisions are subscribing.subscribe_people's."""
    source = source or ConsentSource.for_actor(actor)
    if subscriber.status == Subscriber.Status.BLOCKLISTED:
        raise Blocklisted("this subscriber is blocklisted and cannot be subscribed")
    lists = list(lists)
    if any(ml.workspace_id != subscriber.workspace_id for ml in lists):
        raise ActionError("that list belongs to another workspace", code="not_found")
    done = subscribe_people(
        subscriber.workspace,
        [Person.of(subscriber.email)],
        lists,
        source.terms(
            reason=reason,
            notice_id=notice.pk if notice else None,
            confirmed=confirmed,
            resubscribe=resubscribe,
        ),
        at=now(),
        create=False,
    )
    if done.suppressed:
        raise _suppressed(done.suppressed[0][0])
    if done.blocklisted:
        raise Blocklisted("this subscriber is blocklisted and cannot be subscribed")
    if done.missing:
        raise ActionError("this subscriber no longer exists", code="not_found")
    _, _, results = done.known[0]
    outcomes = []
    for mailing_list in lists:
        result, status = results[mailing_list.pk]
        if result in CHANGED:
            word = "subscribed" if status == Status.CONFIRMED else "pending_confirmation"
        elif result == Result.UNSUBSCRIBED_KEPT:
            word = "unsubscribed_kept"
        else:
            word = "already"
        outcomes.append(SubscribeOutcome(mailing_list, word))
    changed = [
        o.mailing_list.slug for o in outcomes if o.result in ("subscribed", "pending_confirmation")
    ]
    if changed:
        audit(
            "subscriber.subscribed",
            actor=actor,
            workspace=subscriber.workspace,
            obj=subscriber,
            new={"lists": changed, "reason": reason},
        )
    return outcomes


@transaction.atomic
def do_confirm_subscription(
    subscription: Subscription, *, actor: Actor, reason: str, source: ConsentSource | None = None
) -> bool:
    source = source or ConsentSource.for_actor(actor)
    subscription = (
        Subscription.objects.select_for_update()
        .select_related("subscriber__workspace", "mailing_list")
        .get(pk=subscription.pk)
    )
    if subscription.status != Status.UNCONFIRMED:
        return False
    _refuse_if_suppressed(subscription.subscriber.workspace, subscription.subscriber.email)
    stamp = now()
    subscription.status = Status.CONFIRMED
    subscription.status_reason = reason
    subscription.confirmed_at = stamp
    subscription.updated_at = stamp
    subscription.save(update_fields=["status", "status_reason", "confirmed_at", "updated_at"])
    _record(
        subscription.subscriber,
        subscription.mailing_list,
        ConsentRecord.Action.CONFIRM,
        source,
        confirmed_at=stamp,
    )
    audit(
        "subscriber.confirmed",
        actor=actor,
        workspace=subscription.subscriber.workspace,
        obj=subscription.subscriber,
        new={"list": subscription.mailing_list.slug},
    )
    return True


@transaction.atomic
def do_unsubscribe(
    subscriber: Subscriber,
    lists=None,
    *,
    actor: Actor,
    reason: str,
    source: ConsentSource | None = None,
    suppress_all: bool = False,
) -> int:
    """Unsubscribe from the given lists (None: all). `suppress_all` records that the person
    wants no mail at all, which adds the address to the suppression list."""
    source = source or ConsentSource.for_actor(actor)
    subscriptions = (
        Subscription.objects.filter(subscriber=subscriber)
        .exclude(status=Status.UNSUBSCRIBED)
        .select_related("mailing_list")
    )
    if lists is not None:
        subscriptions = subscriptions.filter(mailing_list__in=list(lists))
    stamp = now()
    count = 0
    for subscription in subscriptions.select_for_update(of=("self",)):
        subscription.status = Status.UNSUBSCRIBED
        subscription.status_reason = reason
        subscription.unsubscribed_at = stamp
        subscription.updated_at = stamp
        subscription.save(
            update_fields=["status", "status_reason", "unsubscribed_at", "updated_at"]
        )
        _record(subscriber, subscription.mailing_list, ConsentRecord.Action.WITHDRAW, source)
        count += 1
    if suppress_all:
        _suppress(subscriber.workspace, subscriber.email, Suppression.Reason.UNSUBSCRIBED_ALL)
    if count or suppress_all:
        audit(
            "subscriber.unsubscribed",
            actor=actor,
            workspace=subscriber.workspace,
            obj=subscriber,
            new={"count": count, "reason": reason, "all": suppress_all},
        )
    return count


@transaction.atomic
def do_blocklist_subscriber(subscriber: Subscriber, *, actor: Actor) -> None:
    if subscriber.status == Subscriber.Status.BLOCKLISTED:
        return
    do_unsubscribe(subscriber, actor=actor, reason=Reason.BY_ADMIN)
    subscriber.status = Subscriber.Status.BLOCKLISTED
    subscriber.updated_at = now()
    subscriber.save(update_fields=["status", "updated_at"])
    audit("subscriber.blocklisted", actor=actor, workspace=subscriber.workspace, obj=subscriber)


@transaction.atomic
def do_unblock_subscriber(subscriber: Subscriber, *, actor: Actor) -> None:
    if subscriber.status != Subscriber.Status.BLOCKLISTED:
        return
    subscriber.status = Subscriber.Status.ENABLED
    subscriber.updated_at = now()
    subscriber.save(update_fields=["status", "updated_at"])
    audit("subscriber.unblocked", actor=actor, workspace=subscriber.workspace, obj=subscriber)


@transaction.atomic
def do_delete_subscriber(subscriber: Subscriber, *, actor: Actor) -> None:
    """Removes the record. Unlike erasure, the address is not suppressed: a new sign-up or
    import may add the person again."""
    audit("subscriber.deleted", actor=actor, workspace=subscriber.workspace, obj=subscriber)
    subscriber.delete()


def _suppress(workspace, email: str, reason: str, note: str = "") -> Suppression:
    suppression, _ = Suppression.objects.get_or_create(
        workspace=workspace,
        email_hash=suppression_hash(email),
        defaults={"reason": reason, "note": note[:200]},
    )
    return suppression


@transaction.atomic
def do_erase_subscriber(subscriber: Subscriber, *, actor: Actor) -> None:
    """The right to erasure: every row naming the person goes, and once that has committed
    every file too (personal_data.FILES); what stays is the hashed suppression (so they are
    never imported and mailed again) and anonymous aggregates."""
    workspace, address = subscriber.workspace, subscriber.email
    suppression = _suppress(workspace, address, Suppression.Reason.ERASED)
    if suppression.reason == Suppression.Reason.UNSUBSCRIBED_ALL:
        # Erasure says more than "no marketing": no transactional mail either, until the person
        # signs up again and confirms. A bounce, a complaint or staff's block stay as they are.
        Suppression.objects.filter(pk=suppression.pk).update(reason=Suppression.Reason.ERASED)
    personal_data.erase_hooks(subscriber)
    # After the commit (a file cannot be rolled back); robust: the rows are erased by then, and
    # a file that cannot be rewritten is logged for the operator rather than failing the call.
    transaction.on_commit(lambda: personal_data.erase_from_files(workspace, address), robust=True)
    audit("subscriber.erased", actor=actor, workspace=workspace, obj=subscriber)
    subscriber.delete()


@transaction.atomic
def do_export_personal_data(subscriber: Subscriber, *, actor: Actor) -> dict:
    """Every row that names the person, as one JSON-ready document (the access request)."""
    document = {
        "format": "mailmarketer.personal-data.v1",
        "generated_at": now().isoformat(),
        "workspace": subscriber.workspace.name,
        **personal_data.export_document(subscriber),
    }
    audit("subscriber.exported", actor=actor, workspace=subscriber.workspace, obj=subscriber)
    return document


# The confirmation link a form mails lasts 7 days (signup.tokens.CONFIRM_DAYS); a day more, and
# a record made for an erased address that nobody confirmed is erased again.
RECONSENT_WAIT = timedelta(days=8)


def expire_reconsent_one() -> bool:
    """Worker duty: an erased address signed up again on a form and nobody confirmed within
    RECONSENT_WAIT: the record the form made goes again (the same erasure, the suppression
    stays), so that a form cannot hold an address its owner asked to erase and did not give
    back. A record with a newer pending mail waits for that one."""
    cutoff = now() - RECONSENT_WAIT
    row = (
        Reconsent.objects.filter(status=Reconsent.Status.PENDING, created_at__lt=cutoff)
        .select_related("subscriber__workspace")
        .order_by("pk")
        .first()
    )
    if row is None:
        return False
    with transaction.atomic():
        subscriber = row.subscriber
        waiting = Reconsent.objects.filter(
            subscriber=subscriber, status=Reconsent.Status.PENDING, created_at__gte=cutoff
        ).exists()
        suppression = suppression_for(subscriber.workspace, subscriber.email)
        if waiting or suppression is None or suppression.reason != Suppression.Reason.ERASED:
            Reconsent.objects.filter(pk=row.pk).update(status=Reconsent.Status.EXPIRED)
        else:
            do_erase_subscriber(subscriber, actor=Actor.system("sign-up again not confirmed"))
    return True


# -- activity-tracking consent ---------------------------------------------------------------


@transaction.atomic
def do_grant_tracking_consent(
    subscriber: Subscriber,
    *,
    notice: ConsentNotice,
    source: ConsentSource,
    confirmed: bool,
    actor: Actor,
) -> ConsentRecord:
    """The person agreed to activity tracking with the words of `notice`. `confirmed=False`
    when it rides on a sign-up still to be confirmed by mail (do_confirm_tracking_consent)."""
    if notice.workspace_id != subscriber.workspace_id:
        raise ActionError("that notice belongs to another workspace", code="not_found")
    record = record_tracking_consent(
        subscriber,
        ConsentRecord.Action.GRANT,
        source.terms(reason=Reason.BY_SUBSCRIBER, notice_id=notice.pk),
        at=now(),
        confirmed=confirmed,
    )
    audit(
        "subscriber.tracking_consent",
        actor=actor,
        workspace=subscriber.workspace,
        obj=subscriber,
        new={"action": "grant", "confirmed": confirmed, "notice": notice.pk},
    )
    return record


@transaction.atomic
def do_confirm_tracking_consent(
    subscriber: Subscriber, *, source: ConsentSource, actor: Actor
) -> bool:
    """The sign-up that carried an unconfirmed tracking grant was confirmed. False when the
    newest tracking record is not such a grant (withdrawn since, or confirmed already)."""
    latest = _latest_tracking(subscriber)
    if latest is None or latest.action != ConsentRecord.Action.GRANT or latest.confirmed_at:
        return False
    record_tracking_consent(
        subscriber,
        ConsentRecord.Action.CONFIRM,
        source.terms(reason=Reason.BY_SUBSCRIBER, notice_id=latest.notice_id),
        at=now(),
        confirmed=True,
    )
    audit(
        "subscriber.tracking_consent",
        actor=actor,
        workspace=subscriber.workspace,
        obj=subscriber,
        new={"action": "confirm"},
    )
    return True


@transaction.atomic
def do_withdraw_tracking_consent(
    subscriber: Subscriber, *, source: ConsentSource, actor: Actor
) -> bool:
    """False when there was nothing to withdraw (no tracking record, or withdrawn already)."""
    latest = _latest_tracking(subscriber)
    if latest is None or latest.action == ConsentRecord.Action.WITHDRAW:
        return False
    record_tracking_consent(
        subscriber,
        ConsentRecord.Action.WITHDRAW,
        source.terms(reason=Reason.BY_SUBSCRIBER),
        at=now(),
        confirmed=False,
    )
    audit(
        "subscriber.tracking_consent",
        actor=actor,
        workspace=subscriber.workspace,
        obj=subscriber,
        new={"action": "withdraw"},
    )
    return True


def _latest_tracking(subscriber: Subscriber) -> ConsentRecord | None:
    return latest_tracking_record(subscriber.workspace, subscriber)


# -- suppression -----------------------------------------------------------------------------


@transaction.atomic
def do_open_reconsent(subscriber: Subscriber, *, campaign_id: int, actor: Actor):
    """The confirmation mail `campaign_id` goes to a suppressed address signing up again: the
    engine may send exactly that message to it (subscribing.open_reconsent)."""
    reconsent = open_reconsent(subscriber, campaign_id=campaign_id, at=now())
    audit(
        "subscriber.reconsent_mailed",
        actor=actor,
        workspace=subscriber.workspace,
        obj=subscriber,
        new={"campaign": campaign_id},
    )
    return reconsent


@transaction.atomic
def do_confirm_reconsent(subscriber: Subscriber, *, actor: Actor) -> bool:
    """The person confirmed signing up again: their own suppression (erasure, or unsubscribe
    from everything) is lifted. False when there was none of those to lift."""
    lifted = confirm_reconsent(subscriber, at=now())
    if lifted is None:
        return False
    audit(
        "suppression.removed",
        actor=actor,
        workspace=subscriber.workspace,
        obj=subscriber,
        old={"reason": lifted},
        new={"by": "the person's confirmed sign-up"},
    )
    return True


@transaction.atomic
def do_add_suppression(
    workspace, *, email: str, reason: str = Suppression.Reason.MANUAL, note: str = "", actor: Actor
) -> Suppression:
    email = valid_email(email)
    if reason not in Suppression.Reason.values:
        raise ActionError(f"unknown suppression reason {reason!r}")
    existing = suppression_for(workspace, email)
    if existing:
        raise Conflict(f"this address is already suppressed ({existing.get_reason_display()})")
    suppression = _suppress(workspace, email, reason, note)
    audit(
        "suppression.added",
        actor=actor,
        workspace=workspace,
        obj=suppression,
        new={"reason": reason},
    )
    return suppression


@transaction.atomic
def do_remove_suppression(suppression: Suppression, *, actor: Actor, note: str = "") -> None:
    """`note`: why it was removed, kept in the audit row (the API asks for one)."""
    audit(
        "suppression.removed",
        actor=actor,
        workspace=suppression.workspace,
        obj=suppression,
        old={"reason": suppression.reason},
        new={"note": note[:200]} if note else None,
    )
    suppression.delete()


# -- the audience pages: adding by hand, bulk actions, audit-only records --------------------


@transaction.atomic
def do_add_subscriber(
    workspace,
    *,
    email: str,
    name: str = "",
    lists=(),
    actor: Actor,
    first_name: str = "",
    last_name: str = "",
) -> tuple[Subscriber, list[SubscribeOutcome]]:
    """Staff adding one person (the subscribers page): the subscriber and their lists in one
    transaction, each list following its opt-in (a double opt-in list leaves them unconfirmed)."""
    subscriber = do_create_subscriber(
        workspace,
        email=email,
        name=name,
        first_name=first_name,
        last_name=last_name,
        actor=actor,
    )
    outcomes = []
    if lists:
        outcomes = do_subscribe(subscriber, list(lists), actor=actor, reason=Reason.BY_ADMIN)
    return subscriber, outcomes


BULK_LIMIT = 500  # one page of selections; each subscriber goes through the actions above

# What each bulk action does, as the page labels it.
BULK_ACTIONS = {
    "add_to_list": "Add to a list (double opt-in lists: unconfirmed)",
    "remove_from_list": "Unsubscribe from a list (kept on it as unsubscribed, by staff)",
    "unsubscribe_all": "Unsubscribe from all lists (not suppressed: they may sign up again)",
    "blocklist": "Blocklist (unsubscribes from all lists; cannot be subscribed until unblocked)",
    "delete": "Delete (not suppressed: they may be added again)",
}
BULK_NEEDS_LIST = frozenset({"add_to_list", "remove_from_list"})


@dataclass
class BulkOutcome:
    done: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


@transaction.atomic
def do_bulk_subscribers(
    workspace, subscribers, action: str, *, mailing_list=None, actor: Actor
) -> BulkOutcome:
    """One bulk action over selected subscribers, one transaction: each person goes through the
    single-subscriber action (its own audit row); those it does not apply to are counted by
    reason instead of failing the rest."""
    subscribers = list(subscribers)
    if action not in BULK_ACTIONS:
        raise ActionError(f"unknown bulk action {action!r}")
    if not subscribers:
        raise ActionError("select at least one subscriber")
    if len(subscribers) > BULK_LIMIT:
        raise ActionError(f"select at most {BULK_LIMIT} subscribers at a time")
    if any(s.workspace_id != workspace.pk for s in subscribers):
        raise ActionError("a selected subscriber belongs to another workspace", code="not_found")
    if action in BULK_NEEDS_LIST:
        if mailing_list is None:
            raise ActionError("choose the list to add to or unsubscribe from")
        if mailing_list.workspace_id != workspace.pk:
            raise ActionError("that list belongs to another workspace", code="not_found")
    outcome = BulkOutcome()
    for subscriber in subscribers:
        if action == "add_to_list":
            try:
                (result,) = do_subscribe(
                    subscriber, [mailing_list], actor=actor, reason=Reason.BY_ADMIN
                )
            except Blocklisted:
                outcome.skip("blocklisted")
                continue
            except Suppressed:
                outcome.skip("suppressed")
                continue
            if result.result == "already":
                outcome.skip("already on the list")
            elif result.result == "unsubscribed_kept":
                outcome.skip("unsubscribed earlier (renew on their own page)")
            else:
                outcome.done += 1
        elif action in ("remove_from_list", "unsubscribe_all"):
            lists = [mailing_list] if action == "remove_from_list" else None
            if do_unsubscribe(subscriber, lists, actor=actor, reason=Reason.BY_ADMIN):
                outcome.done += 1
            else:
                outcome.skip("not subscribed")
        elif action == "blocklist":
            if subscriber.status == Subscriber.Status.BLOCKLISTED:
                outcome.skip("already blocklisted")
            else:
                do_blocklist_subscriber(subscriber, actor=actor)
                outcome.done += 1
        else:  # delete
            do_delete_subscriber(subscriber, actor=actor)
            outcome.done += 1
    return outcome


def record_subscriber_viewed(subscriber: Subscriber, *, actor: Actor) -> None:
    """A staff member saw this person's data unmasked (their page)."""
    audit("subscriber.viewed", actor=actor, workspace=subscriber.workspace, obj=subscriber)


def record_subscribers_listed(workspace, *, count: int, actor: Actor) -> None:
    """A page listing `count` people unmasked was shown. The count only: the search terms may
    themselves be addresses, and the audit log never holds personal data."""
    audit(
        "subscriber.listed",
        actor=actor,
        workspace=workspace,
        object_type="subscriber",
        new={"count": count},
    )


def record_audience_export(
    workspace, *, source, fmt: str, members: str, count: int, actor: Actor
) -> None:
    """An export of a list (or segment) left the system: once per export, before the first
    row is sent, so an interrupted download is on record too."""
    audit(
        "audience.exported",
        actor=actor,
        workspace=workspace,
        obj=source,
        new={
            "source": source._meta.model_name,
            "id": source.pk,
            "name": str(source),
            "format": fmt,
            "members": members,
            "count": count,
        },
    )


# -- many people onto one list at once (the API's bulk add) ----------------------------------

BULK_ADD_LIMIT = 10_000  # items per call
# Addresses looked up per query: well under SQLite's limit of bound parameters, and small enough
# that a retry after a concurrent insert redoes little.
BULK_ADD_CHUNK = 500
BULK_ADD_FIELDS = ("email", "name", "first_name", "last_name", "attributes")
BULK_ADD_RESULTS = (
    "created",  # a new subscriber, now on the list
    "subscribed",  # an existing subscriber newly on the list, or an unconfirmed one confirmed
    "already",  # on the list already (as confirmed, or unconfirmed when asked for unconfirmed)
    "unsubscribed_kept",  # unsubscribed from the list earlier: only the person or staff renew it
    "suppressed",  # the address is on the suppression list
    "blocklisted",  # the subscriber is blocklisted
    "invalid",  # the item cannot be used; `reason` says why
)


@dataclass(frozen=True)
class BulkAddResult:
    result: str  # one of BULK_ADD_RESULTS
    subscriber_uuid: str | None = None
    status: str = ""  # the membership's status afterwards, where there is one
    reason: str = ""


def _bulk_add_item(item) -> tuple[str, str, dict, dict]:
    """(normalised email, name, attributes, {first_name, last_name}) of one item, or
    ActionError saying what is wrong. Without a name, the name is first and last joined."""
    if not isinstance(item, dict):
        raise ActionError("each item must be an object with an email")
    unknown = ", ".join(sorted(set(item) - set(BULK_ADD_FIELDS)))
    if unknown:
        raise ActionError(f"unknown fields: {unknown} (allowed: {', '.join(BULK_ADD_FIELDS)})")
    email, name = item.get("email"), item.get("name")
    if email is None:
        raise ActionError("email is missing")
    if not isinstance(email, str):
        raise ActionError("email must be a string")
    if name is not None and not isinstance(name, str):
        raise ActionError("name must be a string")
    parts = {k: _clean_name(item.get(k), k, 100) for k in ("first_name", "last_name")}
    name = _clean_name(name) or display_name(parts["first_name"], parts["last_name"])
    return valid_email(email), name, _clean_attributes(item.get("attributes")), parts


@transaction.atomic
def do_bulk_add_to_list(
    mailing_list: MailingList,
    items: list,
    *,
    confirmed: bool | None,
    notice: ConsentNotice | None = None,
    actor: Actor,
    reason: str = Reason.BY_API,
    subscriber_source: str = Subscriber.Source.API,
) -> list[BulkAddResult]:
    """Puts many people on one list, creating those who are new. One result per item, in order;
    an unusable item is reported and never costs the others.

    One transaction, and a handful of queries per BULK_ADD_CHUNK items (suppression hashes,
    existing subscribers, their memberships, then bulk inserts) rather than the single-person
    actions' queries per item: a 10,000-item call is some 20 chunks, not 100,000 queries. The
    decisions and writes are subscribing.subscribe_people's, as for every other path: each new
    or confirmed membership gets its consent record (with the notice), suppressed and
    blocklisted people are refused, unsubscribed members left alone. The call as a whole gets
    one audit row with the counts. Existing subscribers' names and attributes are left as they
    are (PATCH or an import's update mode change those). Items are the same person when their
    addresses differ only in case (emails.email_key).

    `confirmed=None` follows the list's opt-in (double -> unconfirmed)."""
    if len(items) > BULK_ADD_LIMIT:
        raise ActionError(f"at most {BULK_ADD_LIMIT} items per call")
    results: list[BulkAddResult | None] = [None] * len(items)
    first_index: dict[str, int] = {}
    usable = []
    for index, item in enumerate(items):
        try:
            email, name, attributes, parts = _bulk_add_item(item)
        except ActionError as exc:
            results[index] = BulkAddResult("invalid", reason=str(exc))
            continue
        key = email_key(email)
        if key in first_index:
            results[index] = BulkAddResult(
                "invalid", reason=f"the same address as item {first_index[key]}"
            )
            continue
        first_index[key] = index
        usable.append((index, Person.of(email, name, attributes, **parts)))
    terms = ConsentSource.for_actor(actor).terms(
        reason=reason,
        notice_id=notice.pk if notice else None,
        confirmed=confirmed,
        created_as=subscriber_source,
    )
    for start in range(0, len(usable), BULK_ADD_CHUNK):
        chunk = usable[start : start + BULK_ADD_CHUNK]
        for attempt in range(3):
            try:
                with transaction.atomic():
                    done = _bulk_add_chunk(mailing_list, chunk, terms)
                break
            except IntegrityError:
                # Another request added one of these addresses or memberships after we looked;
                # looking again finds it.
                if attempt == 2:
                    raise
        for index, result in done.items():
            results[index] = result
    counts = {kind: 0 for kind in BULK_ADD_RESULTS}
    for result in results:
        counts[result.result] += 1
    audit(
        "list.bulk_added",
        actor=actor,
        workspace=mailing_list.workspace,
        obj=mailing_list,
        new={"status": terms.status_on(mailing_list), "counts": counts},
    )
    return results


def _bulk_add_chunk(mailing_list, chunk, terms: Terms) -> dict[int, BulkAddResult]:
    """One chunk of (item index, Person) through subscribing.subscribe_people: a handful of
    queries, whatever its size."""
    done = subscribe_people(
        mailing_list.workspace, [person for _, person in chunk], [mailing_list], terms, at=now()
    )
    status = done.statuses[mailing_list.pk]
    results: dict[int, BulkAddResult] = {}
    for position, uid in zip(done.created, done.created_uuids, strict=True):
        results[chunk[position][0]] = BulkAddResult("created", str(uuid.UUID(uid)), status)
    for position, (_, uid) in done.suppressed.items():
        results[chunk[position][0]] = BulkAddResult(
            "suppressed",
            str(uid) if uid else None,
            reason="the address is on the suppression list",
        )
    for position, uid in done.blocklisted.items():
        results[chunk[position][0]] = BulkAddResult(
            "blocklisted", str(uid), reason="the subscriber is blocklisted"
        )
    for position, (_, uid, by_list) in done.known.items():
        result, after = by_list[mailing_list.pk]
        word = {
            Result.SUBSCRIBED: "subscribed",
            Result.CONFIRMED: "subscribed",
            Result.UNSUBSCRIBED_KEPT: "unsubscribed_kept",
        }.get(result, "already")
        results[chunk[position][0]] = BulkAddResult(word, str(uid), after)
    return results
