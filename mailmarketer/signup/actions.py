"""Every write of the signup package: forms, submissions and confirmations. One transaction
each, an audit row each (people named by uuid only).

Subscribing goes through audience.actions, the one writer of subscriptions and consent records;
the confirmation mail through the delivery engine as a transactional message (`_queue_mail`,
the one place that calls it), so it is in the ledger like any other message.

What a submission may do depends on who the address is, and the answer never says which:
- new, or on none of the lists: subscribed at once on single opt-in lists; unconfirmed on double
  opt-in lists, with a confirmation mail;
- left one of the lists earlier, on the do-not-mail list for having unsubscribed from
  everything, or erased at their request: nothing changes until the person confirms by mail
  (only they may undo their own opt-out or erasure); confirming lifts that suppression and
  renews the memberships. An erased address gets a record again (pending re-consent, still
  suppressed) so that the delivery engine can send it this one confirmation mail;
- blocklisted, or suppressed for a bounce, a complaint or by staff: nothing is subscribed and
  nothing is mailed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.urls import reverse
from django.utils.timezone import now

from mailmarketer.accounts.actions import ActionError, Conflict, audit
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import actions as audience
from mailmarketer.audience.emails import email_key, suppression_hash
from mailmarketer.audience.models import (
    ConsentRecord,
    MailingList,
    Subscriber,
    Subscription,
    Suppression,
)
from mailmarketer.audience.subscribing import RECONSENT_REASONS, Person, subscribe_one
from mailmarketer.audience.subscribing import Result as SubscribeResult
from mailmarketer.delivery.transactional import do_send_transactional

from . import altcha, leads, limits, queries, queries_submit, resources, webinars
from .fields import OPTIONAL_CONSENT_KINDS, FormError, Submitted, clean_fields
from .models import (
    Confirmation,
    ConfirmationList,
    Form,
    FormViews,
    Submission,
    WelcomeMessage,
)
from .texts import text
from .tokens import CONFIRM_DAYS, make_confirm_token

logger = logging.getLogger(__name__)

FORM_EDITABLE = (
    "name",
    "slug",
    "kind",
    "title",
    "intro",
    "fields",
    "list_mode",
    "success_message",
    "redirect_url",
    "allowed_origins",
    "language",
)
# Kinds that can be built and submitted; the others are refused until they are built.
AVAILABLE_KINDS = frozenset(Form.Kind)
MAX_ORIGINS = 20
# Suppressions a confirmed sign-up lifts: the person's own "stop everything" and their own
# erasure. The others (a bounce, a complaint, staff) are not the person's to undo from a form.
RENEWABLE = RECONSENT_REASONS


# -- forms -----------------------------------------------------------------------------------


def clean_origin(raw: str) -> str:
    parts = urlsplit(str(raw).strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FormError("allowed_origins", f"{raw!r} is not an origin like https://example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise FormError("allowed_origins", f"{raw!r}: an origin has no path, query or user")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _check(form: Form, lists: list[MailingList]) -> None:
    if form.kind not in Form.Kind.values:
        raise FormError("kind", f"unknown kind {form.kind!r}")
    if form.kind not in AVAILABLE_KINDS:
        raise FormError(
            "kind",
            f"{Form.Kind(form.kind).label} forms are not available yet: only newsletter forms "
            "and webinar forms can be built for now",
            code="not_available",
        )
    try:
        form.full_clean(exclude=["workspace", "notice", "fields", "allowed_origins"])
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise FormError(field, f"{field}: {' '.join(messages)}") from None
    form.fields = clean_fields(form.fields)
    if not isinstance(form.allowed_origins, list) or len(form.allowed_origins) > MAX_ORIGINS:
        raise FormError("allowed_origins", f"a list of at most {MAX_ORIGINS} origins")
    form.allowed_origins = sorted({clean_origin(o) for o in form.allowed_origins})
    if form.redirect_url:
        host = urlsplit(form.redirect_url).netloc.lower()
        allowed = {urlsplit(o).netloc for o in form.allowed_origins}
        allowed.add(urlsplit(settings.BASE_URL).netloc.lower())
        if urlsplit(form.redirect_url).scheme not in ("http", "https") or host not in allowed:
            raise FormError(
                "redirect_url",
                "the redirect must go to one of the allowed origins' hosts (or this server)",
            )
    # A webinar form's lists are optional; so are a resource or evaluation form's.
    if not lists and form.kind != Form.Kind.WEBINAR and form.kind not in OPTIONAL_CONSENT_KINDS:
        raise FormError("lists", "choose at least one list")
    if form.kind == Form.Kind.RESOURCE and not form.workspace.sender_email:
        raise FormError(
            "kind",
            "resource forms mail a download link: set the workspace's sender address in the "
            "settings first",
        )
    if not form.workspace.sender_email and any(m.optin == MailingList.OptIn.DOUBLE for m in lists):
        raise FormError(
            "lists",
            "double opt-in lists need a confirmation mail: set the workspace's sender address "
            "in the settings first",
        )
    if any(m.workspace_id != form.workspace_id for m in lists):
        raise FormError("lists", "no such list in this workspace", code="not_found")


def _set_notice(form: Form, notice_text: str) -> None:
    try:
        form.notice = audience.notice_for_text(form.workspace, f"Form {form.slug}", notice_text)
    except ActionError as exc:
        raise FormError("notice_text", str(exc), code=exc.code) from None


def _snapshot(form: Form) -> dict:
    return {
        **{k: getattr(form, k) for k in FORM_EDITABLE},
        "lists": sorted(form.lists.values_list("pk", flat=True)),
        "notice": form.notice_id,
        "tracking_notice": form.tracking_notice_id,
    }


def _set_tracking_notice(form: Form, tracking_text: str | None) -> None:
    """None leaves it; empty removes the tracking box; words make (or find) a version."""
    if tracking_text is None:
        return
    if not str(tracking_text).strip():
        form.tracking_notice = None
        return
    try:
        form.tracking_notice = audience.notice_for_text(
            form.workspace, f"Form {form.slug}: activity tracking", str(tracking_text)
        )
    except ActionError as exc:
        raise FormError("tracking_notice_text", str(exc), code=exc.code) from None


@transaction.atomic
def do_create_form(
    workspace,
    *,
    lists,
    notice_text: str,
    actor: Actor,
    tracking_notice_text: str | None = None,
    event=None,
    **fields,
) -> Form:
    unknown = set(fields) - set(FORM_EDITABLE)
    if unknown:
        raise FormError(sorted(unknown)[0], f"unknown form fields: {', '.join(sorted(unknown))}")
    form = Form(workspace=workspace, **fields)
    lists = list(lists)
    _check(form, lists)
    if queries.slug_taken(workspace, form.slug):
        raise Conflict(f"a form with the slug {form.slug!r} already exists")
    _set_notice(form, notice_text)
    _set_tracking_notice(form, tracking_notice_text)
    form.save()
    form.lists.set(lists)
    webinars.bind_form(form, event)
    audit("form.created", actor=actor, workspace=workspace, obj=form, new=_snapshot(form))
    return form


@transaction.atomic
def do_update_form(
    form: Form,
    changes: dict,
    *,
    lists=None,
    notice_text: str | None = None,
    actor: Actor,
    tracking_notice_text: str | None = None,
    event=None,
) -> Form:
    changes = dict(changes)
    # The builder passes it with the settings; the API as its own argument.
    if "tracking_notice_text" in changes:
        tracking_notice_text = changes.pop("tracking_notice_text")
    unknown = set(changes) - set(FORM_EDITABLE)
    if unknown:
        raise FormError(sorted(unknown)[0], f"unknown form fields: {', '.join(sorted(unknown))}")
    form = Form.objects.select_for_update().get(pk=form.pk)
    old = _snapshot(form)
    for key, value in changes.items():
        setattr(form, key, value)
    lists = list(form.lists.all()) if lists is None else list(lists)
    _check(form, lists)
    if "slug" in changes and queries.slug_taken(form.workspace, form.slug, but=form.pk):
        raise Conflict(f"a form with the slug {form.slug!r} already exists")
    if notice_text is not None:
        _set_notice(form, notice_text)
    _set_tracking_notice(form, tracking_notice_text)
    form.updated_at = now()
    form.save()
    form.lists.set(lists)
    webinars.bind_form(form, event)
    new = _snapshot(form)
    diff = {k for k in new if new[k] != old[k]}
    if diff:
        audit(
            "form.updated",
            actor=actor,
            workspace=form.workspace,
            obj=form,
            old={k: old[k] for k in sorted(diff)},
            new={k: new[k] for k in sorted(diff)},
        )
    return form


@transaction.atomic
def do_delete_form(form: Form, *, actor: Actor) -> None:
    """The form and its submissions go; the people, their subscriptions and consent records
    (which name the form's notice, not the form) stay."""
    audit("form.deleted", actor=actor, workspace=form.workspace, obj=form, old={"slug": form.slug})
    form.delete()


# -- submissions -----------------------------------------------------------------------------


def count_form_view(form: Form) -> None:
    """One more view of the hosted page today. A counter, not a change anyone made: no audit
    row, and nothing about the visitor."""
    day = now().astimezone(UTC).date()
    if FormViews.objects.filter(form=form, day=day).update(views=F("views") + 1):
        return
    try:
        with transaction.atomic():
            FormViews.objects.create(workspace_id=form.workspace_id, form=form, day=day, views=1)
    except IntegrityError:  # the day's row was made by a concurrent view meanwhile
        FormViews.objects.filter(form=form, day=day).update(views=F("views") + 1)


class Blocked(Exception):
    """A submission refused before anything is stored: `reason` is a texts.py key."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Visit:
    """Where a submission came from, as the request told it."""

    via: str  # "page", "embed" or "json"
    ip: str | None = None
    user_agent: str = ""
    referrer: str = ""
    # The IP's keyed hash when it was made before (a spooled sign-up keeps the hash, and the
    # IP itself only when the workspace keeps IPs).
    ip_key: str | None = None

    def key(self) -> str:
        return self.ip_key or limits.ip_key(self.ip)


def _refuses(subscriber: Subscriber | None, suppression: Suppression | None) -> bool:
    if subscriber is not None and subscriber.status == Subscriber.Status.BLOCKLISTED:
        return True
    if suppression is None:
        return False
    # An address suppressed for any reason but the person's own opt-out or erasure cannot be
    # signed up by a form.
    return suppression.reason not in RENEWABLE


def _fill_profile(subscriber: Subscriber, actor: Actor, *, name: str = "", attributes=None):
    """Fills in what the record lacks, never overwrites: anyone can type anyone's address into
    a public form, and must not be able to rename them."""
    name = name if name and not subscriber.name else None
    # With the name, the first and last name the form asked (kept as attributes too).
    parts = _name_parts({**subscriber.attributes, **(attributes or {})}) if name else {}
    parts = {k: v for k, v in parts.items() if v and not getattr(subscriber, k)}
    attributes = {
        k: v for k, v in (attributes or {}).items() if subscriber.attributes.get(k) in (None, "")
    }
    if name or attributes:
        audience.do_update_subscriber(
            subscriber, name=name, attributes=attributes or None, actor=actor, **parts
        )


def _name_parts(attributes: dict) -> dict:
    """The form's first_name and last_name fields, for the subscriber's own fields."""
    return {k: str(attributes.get(k) or "")[:100] for k in ("first_name", "last_name")}


def _queue_mail(confirmation: Confirmation, subscriber: Subscriber, form: Form) -> None:
    """The confirmation mail, through the delivery engine. It echoes nothing the submitter
    typed but the address (spam is injected through name fields), and the address and link go
    in as template values, never into the template's source: an address may hold braces."""
    url = settings.BASE_URL + reverse("signup-confirm", args=[make_confirm_token(confirmation.pk)])
    workspace = form.workspace
    body = text(
        form.language,
        "mail_body",
        address="{{ subscriber.email }}",
        sender="{{ data.sender }}",
        url="{{ data.url }}",
    )
    do_send_transactional(
        workspace,
        subscriber,
        actor=Actor.system(f"form {form.slug}"),
        subject=text(form.language, "mail_subject"),
        body=body,
        body_format="text",
        data={"url": url, "sender": workspace.sender_name or workspace.name},
        confirmation=True,
    )


def _confirmation_for(subscriber: Subscriber, email_hash: str, form: Form) -> Confirmation | None:
    """The confirmation this sign-up joins: a new one with its mail when the limits allow a
    mail, else the address's pending one (no mail), else None (no mail, nothing to confirm)."""
    workspace = form.workspace
    # One address's sign-ups take turns here, so that two at once cannot both see "no mail
    # today" and both send one.
    Subscriber.objects.select_for_update().filter(pk=subscriber.pk).first()
    if limits.may_mail(workspace, email_hash):
        stamp = now()
        try:
            with transaction.atomic():
                confirmation = Confirmation.objects.create(
                    workspace=workspace,
                    subscriber=subscriber,
                    email_hash=email_hash,
                    created_at=stamp,
                    expires_at=stamp + timedelta(days=CONFIRM_DAYS),
                )
                _queue_mail(confirmation, subscriber, form)
            return confirmation
        except ActionError as exc:
            # The workspace cannot send (its sender address was removed since the form was
            # built): the sign-up stands, unconfirmed, and the person gets the same answer;
            # the log tells the operator.
            logger.warning("form %s: no confirmation mail could be queued: %s", form.pk, exc)
    return queries.pending_confirmation(workspace, email_hash, subscriber)


@transaction.atomic
def do_submit_form(
    form: Form,
    submitted: Submitted,
    visit: Visit,
    *,
    solved: altcha.Solved | None = None,
    lists: list[MailingList] | None = None,
    at=None,
) -> Submission:
    """One accepted submission, all or nothing. Raises Blocked (nothing stored) when the
        per-IP or per-address limits are reached, altcha.AltchaRefused when the proof of work
        `solved` was spent before. `submitted` has been read without errors; `lists`, when given,
        are the form's lists among `submitted.lists` (queries.form_lists, or a FormConfig's). `at`,
    when given, is when the person sent it (a spooled sign-up stored later: signup/spooled.py)."""
    workspace = form.workspace
    if solved is not None:
        altcha.spend(workspace, solved)
    email_hash = suppression_hash(submitted.email)
    lists = queries.form_lists(form, submitted.lists) if lists is None else list(lists)
    if _plain(form, submitted, lists):
        done = _submit_plain(form, submitted, visit, lists, email_hash, at=at)
        if done is not None:
            return done
    if limits.over_limit(workspace, email_hash=email_hash, key=visit.key(), at=at):
        raise Blocked("too_many")
    # A webinar's seats are counted under its lock; full or closed stores nothing.
    event = webinars.check_open(form) if form.kind == Form.Kind.WEBINAR else None
    keep_ip = workspace.consent_store_ip
    actor = Actor.system(f"form {form.slug}")
    subscriber = queries.subscriber_by_email(workspace, submitted.email)
    suppression = audience.suppression_for(workspace, submitted.email)
    submission = Submission(
        workspace=workspace,
        form=form,
        notice=form.notice,
        email_hash=email_hash,
        ip_key=visit.key(),
        ip=visit.ip if keep_ip else None,
        user_agent=visit.user_agent[:400] if keep_ip else "",
        page_url=submitted.page_url[:500],
        referrer=visit.referrer[:500],
        via=visit.via,
        created_at=at or now(),
    )
    if _refuses(subscriber, suppression):
        submission.outcome = Submission.Outcome.REFUSED
        submission.save()
        _after_submit(form, submission, submitted, subscriber, refused=True)
        audit(
            "form.submitted",
            actor=actor,
            workspace=workspace,
            obj=form,
            new={"outcome": submission.outcome, "via": visit.via},
        )
        return submission

    if subscriber is None:
        try:
            # A new address has nothing to renew: only a double opt-in list makes this
            # sign-up wait for a confirmation mail, and the name with it (see below). Set
            # now, it saves an update and its audit row.
            # A webinar registration and a resource request always mail (the invitation, the
            # download link): their names wait too.
            no_mail = (
                event is None
                and form.kind != Form.Kind.RESOURCE
                and all(m.optin != MailingList.OptIn.DOUBLE for m in lists)
            )
            subscriber = audience.do_create_subscriber(
                workspace,
                email=submitted.email,
                name=submitted.name if no_mail else "",
                **(_name_parts(submitted.attributes) if no_mail else {}),
                attributes=submitted.attributes,
                source=Subscriber.Source.FORM,
                actor=actor,
                # Erased (or deleted after opting out): a record to send the confirmation to,
                # suppressed until the person confirms.
                pending_reconsent=suppression is not None,
            )
        except Conflict:
            # A concurrent submission of the same address created them first (the insert
            # waited for it to commit, so it is visible now): this one updates them instead.
            subscriber = queries.subscriber_by_email(workspace, submitted.email)
            if subscriber is None:
                raise
            _fill_profile(subscriber, actor, attributes=submitted.attributes)
    else:
        _fill_profile(subscriber, actor, attributes=submitted.attributes)
    submission.subscriber = subscriber
    statuses = queries.membership_statuses(subscriber, lists)
    # Only the person may undo their own opt-out, and only by confirming.
    renew = [
        m
        for m in lists
        if suppression is not None or statuses.get(m.pk) == Subscription.Status.UNSUBSCRIBED
    ]
    direct = [m for m in lists if m not in renew]
    outcomes = []
    if direct:
        outcomes = audience.do_subscribe(
            subscriber,
            direct,
            actor=actor,
            reason=Subscription.Reason.BY_SUBSCRIBER,
            source=_consent_source(form, submission),
            notice=form.notice,
        )
    statuses = queries.membership_statuses(subscriber, direct)
    unconfirmed = [
        m
        for m in direct
        if m.optin == MailingList.OptIn.DOUBLE
        and statuses.get(m.pk) == Subscription.Status.UNCONFIRMED
    ]
    if renew or unconfirmed:
        submission.outcome = Submission.Outcome.CONFIRMING
    elif not lists:
        submission.outcome = Submission.Outcome.REQUESTED
    elif any(o.result == "subscribed" for o in outcomes):
        submission.outcome = Submission.Outcome.SUBSCRIBED
    else:
        submission.outcome = Submission.Outcome.ALREADY
    if renew or unconfirmed or event is not None or form.kind == Form.Kind.RESOURCE:
        # A confirmation (webinar, download) mail goes out, and the engine writes the name
        # into its To header: the name waits on the submission until the person confirms (a
        # resource form's stays there: its mail goes to whatever address was typed).
        submission.name = submitted.name[:200]
    else:
        _fill_profile(subscriber, actor, name=submitted.name)
    if submitted.tracking and form.tracking_notice_id:
        # Its own record with the words of the second box; confirmed with the sign-up when a
        # confirmation mail goes out (a stranger may have typed this address).
        submission.tracking = True
        audience.do_grant_tracking_consent(
            subscriber,
            notice=form.tracking_notice,
            source=_consent_source(form, submission),
            confirmed=not (renew or unconfirmed),
            actor=actor,
        )
    submission.save()
    if renew or unconfirmed:
        confirmation = _confirmation_for(subscriber, email_hash, form)
        if confirmation is not None:
            for mailing_list in [*unconfirmed, *renew]:
                ConfirmationList.objects.update_or_create(
                    confirmation=confirmation,
                    mailing_list=mailing_list,
                    defaults={"submission": submission, "renew": mailing_list in renew},
                    create_defaults={
                        "workspace": workspace,
                        "submission": submission,
                        "renew": mailing_list in renew,
                    },
                )
    if event is not None:
        webinars.register(
            event,
            subscriber,
            form=form,
            name=submitted.name,
            source=_consent_source(form, submission),
            notice=form.notice,
            actor=actor,
        )
    _after_submit(form, submission, submitted, subscriber, refused=False)
    audit(
        "form.submitted",
        actor=actor,
        workspace=workspace,
        obj=form,
        new={"subscriber": str(subscriber.uuid), "outcome": submission.outcome, "via": visit.via},
    )
    return submission


def _plain(form: Form, submitted: Submitted, lists: list[MailingList]) -> bool:
    """A submission that mails nothing whoever the address is: a newsletter form's, to
    single opt-in lists only. Most sign-ups; _submit_plain takes them in a fixed handful of
    statements."""
    return (
        form.kind == Form.Kind.NEWSLETTER
        and bool(lists)
        and all(m.optin == MailingList.OptIn.SINGLE for m in lists)
    )


def _submit_plain(
    form: Form,
    submitted: Submitted,
    visit: Visit,
    lists: list[MailingList],
    email_hash: str,
    *,
    at=None,
) -> Submission | None:
    """The plain submission (see _plain) in five statements after the spent challenge: the
    reads (one: queries_submit.submit_state), then the subscriber, memberships and consent
    records (audience.subscribing.subscribe_one, three at most), the submission and one audit
    row. Returns None, having written nothing, when the address needs more than that (it is
    suppressed or blocklisted, left one of the lists, is on one unconfirmed, or its record
    lacks the name or attributes typed): do_submit_form's general path decides those, in the
    same transaction. Raises Blocked at the limits, as that path does."""
    workspace = form.workspace
    ip_key = visit.key()
    at = at or now()
    state = queries_submit.submit_state(
        workspace.pk,
        email_key=email_key(submitted.email),
        email_hash=email_hash,
        ip_key=ip_key,
        since=at - limits.WINDOW,
        list_ids=[m.pk for m in lists],
    )
    if limits.over(state.from_ip, state.for_address):
        raise Blocked("too_many")
    known = state.known
    if known.subscriber_id is not None and (
        (submitted.name and not state.name)
        or any(state.attributes.get(k) in (None, "") for k in submitted.attributes)
    ):
        return None  # _fill_profile has something to fill in (an update and its audit row)
    keep_ip = workspace.consent_store_ip
    submission = Submission(
        workspace=workspace,
        form=form,
        notice=form.notice,
        email_hash=email_hash,
        ip_key=ip_key,
        ip=visit.ip if keep_ip else None,
        user_agent=visit.user_agent[:400] if keep_ip else "",
        page_url=submitted.page_url[:500],
        referrer=visit.referrer[:500],
        via=visit.via,
        created_at=at,
    )
    track = bool(submitted.tracking and form.tracking_notice_id)
    done = subscribe_one(
        workspace,
        Person.of(
            submitted.email,
            submitted.name.strip(),
            submitted.attributes,
            **_name_parts(submitted.attributes),
        ),
        lists,
        _consent_source(form, submission).terms(
            reason=Subscription.Reason.BY_SUBSCRIBER,
            notice_id=form.notice_id,
            created_as=Subscriber.Source.FORM,
        ),
        known,
        at=at,
        tracking_notice_id=form.tracking_notice_id if track else None,
    )
    if done is None:
        return None
    joined = [m.slug for m in lists if done.results[m.pk][0] == SubscribeResult.SUBSCRIBED]
    submission.outcome = Submission.Outcome.SUBSCRIBED if joined else Submission.Outcome.ALREADY
    submission.subscriber_id = done.subscriber_id
    submission.tracking = track
    # One audit row for the whole submission: what subscriber.created, subscriber.subscribed
    # and subscriber.tracking_consent would each say on the general path. On PostgreSQL it is
    # written by the same statement as the submission (one round trip instead of two).
    _insert_submission(
        submission,
        audit_new={
            "subscriber": str(done.uuid),
            "outcome": str(submission.outcome),
            "via": visit.via,
            "created": done.created,
            "lists": joined,
            **({"tracking_consent": "grant"} if track else {}),
        },
    )
    submission.grant = None
    return submission


SUBMISSION_COLUMNS = (
    "workspace_id",
    "form_id",
    "subscriber_id",
    "notice_id",
    "email_hash",
    "ip_key",
    "ip",
    "user_agent",
    "page_url",
    "referrer",
    "name",
    "via",
    "tracking",
    "outcome",
    "created_at",
)


AUDIT_COLUMNS = (
    "at",
    "workspace_id",
    "actor_label",
    "event",
    "object_type",
    "object_id",
    "object_repr",
    "new",
)


def _insert_submission(submission: Submission, *, audit_new: dict | None = None) -> None:
    """submission.save(), as one plain INSERT ... RETURNING: the ORM's save was a fifth of a
    plain sign-up's CPU in the web process (profiled), for one row of known columns. With
    `audit_new`, also the submission's audit row `form.submitted` (what accounts' audit() writes
    for the form, by the system actor "form <slug>"): on PostgreSQL in the same statement (a
    data-modifying CTE), elsewhere by a second INSERT. audit() through the ORM cost the web
    process as much as the submission's other statements together (profiled)."""
    postgres = connection.vendor == "postgresql"
    qn = connection.ops.quote_name
    values = [getattr(submission, column) for column in SUBMISSION_COLUMNS]
    values[-1] = connection.ops.adapt_datetimefield_value(values[-1])
    marks = ", ".join(
        "CAST(%s AS inet)" if postgres and column == "ip" else "%s" for column in SUBMISSION_COLUMNS
    )
    insert = (
        f"INSERT INTO {qn(Submission._meta.db_table)} "  # noqa: S608 - identifiers from the model
        f"({', '.join(map(qn, SUBMISSION_COLUMNS))}) VALUES ({marks}) RETURNING {qn('id')}"
    )
    audit_sql, audit_values = "", []
    if audit_new is not None:
        form = submission.form
        audit_values = [
            values[-1],
            submission.workspace_id,
            Actor.system(f"form {form.slug}").label[:200],
            "form.submitted",
            form._meta.model_name,
            str(form.pk),
            str(form)[:200],
            json.dumps(audit_new),
        ]
        audit_marks = ", ".join(
            "CAST(%s AS jsonb)" if postgres and column == "new" else "%s"
            for column in AUDIT_COLUMNS
        )
        audit_sql = (
            f"INSERT INTO {qn(AuditEvent._meta.db_table)} "  # noqa: S608 - identifiers from the model
            f"({', '.join(map(qn, AUDIT_COLUMNS))}) VALUES ({audit_marks})"
        )
    with connection.cursor() as cursor:
        if audit_sql and postgres:
            cursor.execute(f"WITH audited AS ({audit_sql}) {insert}", audit_values + values)
        else:
            cursor.execute(insert, values)
        submission.pk = cursor.fetchone()[0]
        if audit_sql and not postgres:
            cursor.execute(audit_sql, audit_values)
    submission._state.adding = False


def _after_submit(form: Form, submission: Submission, submitted: Submitted, subscriber, *, refused):
    """What a form's kind adds to a submission, in its transaction: a resource form's download
    link (mailed, and kept on `submission.grant` for the page), an evaluation form's lead."""
    submission.grant = None
    if form.kind == Form.Kind.RESOURCE:
        submission.grant = resources.give_resource(
            form, submission, None if refused else subscriber, may_mail=not refused
        )
    elif form.kind == Form.Kind.EVALUATION and subscriber is not None:
        # The company typed now, not one the record may hold from before.
        typed = {"company": str(submitted.attributes.get("company") or "")}
        leads.create_lead(form, submission, subscriber, {**submitted.extra, **typed})


def _consent_source(form: Form, submission: Submission) -> audience.ConsentSource:
    # Page URL and referrer have no place on the consent record (ConsentSource has none): they
    # stay on the submission, which the record's source id names through the form.
    return audience.ConsentSource(
        type=ConsentRecord.SourceType.FORM,
        id=str(form.pk),
        label=f"Form: {form.name}",
        ip=submission.ip,
        user_agent=submission.user_agent,
    )


# -- welcome messages ------------------------------------------------------------------------


def _check_welcome(workspace, subject: str, body: str) -> None:
    """Compiles the message as the engine will, so that a template that cannot render is
    refused now, naming its field and line, not when someone confirms."""
    from mailmarketer.campaigns import rendering
    from mailmarketer.campaigns.content import TemplateProblem
    from mailmarketer.campaigns.models import Campaign

    draft = Campaign(
        workspace=workspace,
        kind=Campaign.Kind.TRANSACTIONAL,
        name=subject,
        subject=subject,
        body=body,
        body_format="markdown",
    )
    try:
        rendering.compile_campaign(draft)
    except TemplateProblem as problem:
        raise FormError(problem.field, str(problem), code="template") from None


@transaction.atomic
def do_set_welcome_message(
    mailing_list: MailingList, *, subject: str, body: str, actor: Actor
) -> WelcomeMessage | None:
    """Sets the list's welcome message; an empty subject and body remove it."""
    subject, body = subject.strip(), body.strip()
    existing = WelcomeMessage.objects.filter(mailing_list=mailing_list).first()
    workspace = mailing_list.workspace
    if not subject and not body:
        if existing:
            existing.delete()
            audit("list.welcome_removed", actor=actor, workspace=workspace, obj=mailing_list)
        return None
    if not subject or not body:
        field = "subject" if not subject else "body"
        raise FormError(field, f"{field}: a welcome message needs a subject and a body")
    if len(subject) > 200:
        raise FormError("subject", "subject: at most 200 characters")
    _check_welcome(workspace, subject, body)
    message = existing or WelcomeMessage(workspace=workspace, mailing_list=mailing_list)
    message.subject, message.body, message.updated_at = subject, body, now()
    message.save()
    audit(
        "list.welcome_set",
        actor=actor,
        workspace=workspace,
        obj=mailing_list,
        new={"subject": subject},
    )
    return message


def _send_welcomes(subscriber: Subscriber, lists: list[MailingList]) -> None:
    """Each confirmed list's welcome message, if it has one. A message that cannot go (the
    address suppressed meanwhile, a template broken since) is logged and skipped: the
    confirmation stands."""
    for message in WelcomeMessage.objects.filter(mailing_list__in=lists).order_by("pk"):
        try:
            with transaction.atomic():
                do_send_transactional(
                    subscriber.workspace,
                    subscriber,
                    actor=Actor.system("welcome message"),
                    subject=message.subject,
                    body=message.body,
                    body_format="markdown",
                )
        except ActionError as exc:
            logger.warning("welcome message %s not sent: %s", message.pk, exc)


# -- confirmation ----------------------------------------------------------------------------


@transaction.atomic
def do_confirm_signup(confirmation: Confirmation, *, ip: str | None, user_agent: str) -> bool:
    """The person pressed Confirm. Renews what they had opted out of (lifting their own
    "unsubscribe from everything"), confirms the unconfirmed memberships, each with a consent
    record. False when there is nothing (left) to confirm."""
    confirmation = Confirmation.objects.select_for_update().get(pk=confirmation.pk)
    if confirmation.status != Confirmation.Status.PENDING or confirmation.expires_at <= now():
        return False
    subscriber = confirmation.subscriber
    workspace = subscriber.workspace
    actor = Actor.system("double opt-in confirmation")
    keep_ip = workspace.consent_store_ip
    confirm_source = audience.ConsentSource(
        type=ConsentRecord.SourceType.SUBSCRIBER,
        id=str(confirmation.pk),
        label="Confirmation link",
        ip=ip if keep_ip else None,
        user_agent=user_agent if keep_ip else "",
    )
    items = list(
        confirmation.items.select_related(
            "mailing_list", "submission__form", "submission__notice"
        ).order_by("submission_id", "pk")
    )
    suppression = audience.suppression_for(workspace, subscriber.email)
    if subscriber.status == Subscriber.Status.BLOCKLISTED or (
        suppression is not None and suppression.reason not in RENEWABLE
    ):
        return False  # suppressed since (a bounce, a complaint, staff): not ours to undo
    if suppression is not None and any(item.renew for item in items):
        audience.do_confirm_reconsent(subscriber, actor=actor)
    for item in items:
        if item.renew:
            audience.do_subscribe(
                subscriber,
                [item.mailing_list],
                actor=actor,
                reason=Subscription.Reason.BY_SUBSCRIBER,
                source=_consent_source(item.submission.form, item.submission),
                notice=item.submission.notice,
                confirmed=False,
                resubscribe=True,
            )
    confirmed = []
    for subscription in queries.unconfirmed_subscriptions(
        subscriber, [item.mailing_list for item in items]
    ):
        if audience.do_confirm_subscription(
            subscription,
            actor=actor,
            reason=Subscription.Reason.BY_SUBSCRIBER,
            source=confirm_source,
        ):
            confirmed.append(subscription.mailing_list)
    if any(item.submission.tracking for item in items):
        audience.do_confirm_tracking_consent(subscriber, source=confirm_source, actor=actor)
    typed = [item.submission.name for item in items if item.submission.name]
    if typed:
        _fill_profile(subscriber, actor, name=typed[-1])
    _send_welcomes(subscriber, confirmed)
    confirmation.status = Confirmation.Status.CONFIRMED
    confirmation.confirmed_at = now()
    confirmation.save(update_fields=["status", "confirmed_at"])
    audit(
        "form.confirmed",
        actor=actor,
        workspace=workspace,
        obj=subscriber,
        new={"lists": sorted(item.mailing_list.slug for item in items)},
    )
    return True
