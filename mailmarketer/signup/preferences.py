"""The preference centre's writes (docs/unsubscribe.md, "Preference centre"): what a person may
change about themselves through the signed link in every message, and the two mails it sends
to their own address (a link to their data, a link to erase it).

The link is the only authority: whoever holds it acts as the person, so it can do only what the
person could (their public lists, their name, unsubscribe, their own data). Each change is one
transaction through audience.actions (the one writer of subscriptions, consent and
suppression), writes its consent records there and one `preferences.*` audit row here (the
person by uuid only). The mails go through the delivery engine as transactional messages, so
they are in the ledger; at most MAILS_PER_DAY a day per person, counted from the audit rows, so
that a forwarded link cannot be used to fill someone's mailbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils.timezone import now

from mailmarketer.accounts.actions import ActionError, audit
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import actions as audience
from mailmarketer.audience import queries as audience_queries
from mailmarketer.audience.models import (
    ConsentNotice,
    ConsentRecord,
    MailingList,
    Subscriber,
)
from mailmarketer.audience.subscribing import RECONSENT_REASONS
from mailmarketer.delivery.transactional import do_send_transactional

from . import queries
from .texts_pages import page_text
from .tokens import DATA, ERASE, SELF_SERVICE_HOURS, make_self_service_token

MAILS_PER_DAY = 3
MAIL_EVENT = "preferences.mail_sent"
NOTICE_NAME = "Preference centre"
# The words next to the lists on the page (texts_pages.py, "notice", in the page's language);
# the consent records of lists ticked there name this notice, so their hash is the hash of what
# the person saw. One notice per language (English keeps the original name), so that switching
# languages does not make a new version each time.
NOTICE_NAMES = {"en": NOTICE_NAME, "de": f"{NOTICE_NAME} (de)"}
REASON = audience.Reason.BY_SUBSCRIBER


class TooManyMails(ActionError):
    code = "rate_limited"


def sender_of(workspace) -> str:
    return workspace.sender_name or workspace.name


def notice_words(workspace, language: str = "en") -> str:
    return page_text(language, "notice", sender=sender_of(workspace))


def preference_notice(workspace, language: str = "en") -> ConsentNotice:
    name = NOTICE_NAMES.get(language, NOTICE_NAME)
    return audience.notice_for_text(workspace, name, notice_words(workspace, language))


@dataclass(frozen=True)
class Visitor:
    """The browser acting through the link: kept on consent records where the workspace keeps
    IPs and user agents."""

    ip: str | None = None
    user_agent: str = ""


def _source(label: str, visitor: Visitor) -> audience.ConsentSource:
    return audience.ConsentSource(
        type=ConsentRecord.SourceType.SUBSCRIBER,
        label=label,
        ip=visitor.ip,
        user_agent=visitor.user_agent,
    )


def _actor() -> Actor:
    # No IP on the audit row: the person is not staff, and their IP goes only where the
    # workspace keeps it (the consent records).
    return Actor.system("preference centre")


@dataclass
class Changed:
    joined: list[str]
    left: list[str]
    name: bool
    refused: str = ""  # why the lists could not be joined (a suppression not theirs to lift)
    tracking: str = ""  # "granted" or "withdrawn" when it changed


def tracking_notice_of(subscriber: Subscriber) -> ConsentNotice | None:
    """The activity-tracking words the person agreed to last (None: never asked)."""
    for record in queries.tracking_records(subscriber):
        if record.notice_id:
            return record.notice
    return None


def _set_tracking(subscriber, wanted: bool, visitor: Visitor, actor: Actor) -> str:
    has = audience_queries.has_tracking_consent(subscriber.workspace, subscriber)
    source = _source("Preference centre", visitor)
    if has and not wanted:
        audience.do_withdraw_tracking_consent(subscriber, source=source, actor=actor)
        return "withdrawn"
    notice = tracking_notice_of(subscriber)
    if wanted and not has and notice is not None:
        audience.do_grant_tracking_consent(
            subscriber, notice=notice, source=source, confirmed=True, actor=actor
        )
        return "granted"
    return ""


@transaction.atomic
def do_update_preferences(
    subscriber: Subscriber,
    *,
    wanted: list[MailingList],
    name: str | None,
    visitor: Visitor,
    tracking: bool | None = None,
    language: str = "en",
) -> Changed:
    """The person's public lists become exactly `wanted` (public lists of their workspace; the
    caller reads them), and their name `name` (None: unchanged). Joining a list is their own
    consent (the page's notice, source "the subscriber") and confirmed: the link reached them
    at this address. Joining lifts their own "unsubscribe from everything"; a suppression for a
    bounce, a complaint or by staff is not theirs to lift, and nothing is joined.

    `tracking` (None: not on the page): keep or withdraw their activity-tracking consent; ticked
    again, it is granted with the words they agreed to last (the page shows them). `language`
    is the page's, whose notice words the person saw."""
    workspace = subscriber.workspace
    actor = _actor()
    public = queries.public_lists(workspace)
    if any(m.pk not in {p.pk for p in public} for m in wanted):
        raise ActionError("only the public lists can be chosen here", field="lists")
    active = queries.active_list_ids(subscriber)
    joining = [m for m in wanted if m.pk not in active]
    leaving = [m for m in public if m.pk in active and m not in wanted]
    changed = Changed(joined=[], left=[], name=False)
    if name is not None and name.strip() != subscriber.name:
        audience.do_update_subscriber(subscriber, name=name.strip(), actor=actor)
        changed.name = True
    if leaving:
        audience.do_unsubscribe(
            subscriber,
            leaving,
            actor=actor,
            reason=REASON,
            source=_source("Preference centre", visitor),
        )
        changed.left = [m.slug for m in leaving]
    if joining:
        suppression = audience.suppression_for(workspace, subscriber.email)
        if suppression is not None and suppression.reason not in RECONSENT_REASONS:
            changed.refused = "suppressed"
        elif subscriber.status == Subscriber.Status.BLOCKLISTED:
            changed.refused = "blocklisted"
        else:
            if suppression is not None:
                # Their own "stop everything" (the one writer lifts the person's own
                # suppressions; an erased person has no manage link until they confirm).
                audience.do_confirm_reconsent(subscriber, actor=actor)
            audience.do_subscribe(
                subscriber,
                joining,
                actor=actor,
                reason=REASON,
                source=_source("Preference centre", visitor),
                notice=preference_notice(workspace, language),
                confirmed=True,
                resubscribe=True,
            )
            changed.joined = [m.slug for m in joining]
    if tracking is not None:
        changed.tracking = _set_tracking(subscriber, tracking, visitor, actor)
    if changed.joined or changed.left or changed.name or changed.tracking:
        audit(
            "preferences.updated",
            actor=actor,
            workspace=workspace,
            obj=subscriber,
            new={
                "joined": changed.joined,
                "left": changed.left,
                "name": changed.name,
                **({"tracking": changed.tracking} if changed.tracking else {}),
            },
        )
    return changed


@transaction.atomic
def do_unsubscribe_everything(subscriber: Subscriber, *, visitor: Visitor) -> int:
    """Every list, and the address on the do-not-mail list (as the unsubscribe page's button)."""
    actor = _actor()
    already = audience.suppression_for(subscriber.workspace, subscriber.email) is not None
    count = audience.do_unsubscribe(
        subscriber,
        None,
        actor=actor,
        reason=REASON,
        source=_source("Preference centre: everything", visitor),
        suppress_all=not already,
    )
    audit(
        "preferences.unsubscribed_all",
        actor=actor,
        workspace=subscriber.workspace,
        obj=subscriber,
        new={"count": count},
    )
    return count


def _mail(subscriber: Subscriber, *, subject: str, body: str, url: str, kind: str) -> None:
    """One mail to the person's own address through the engine, counted against MAILS_PER_DAY.
    The address and the link go in as template values, never into the template's source."""
    workspace = subscriber.workspace
    since = now() - timedelta(days=1)
    if queries.self_service_mails_since(subscriber, MAIL_EVENT, since) >= MAILS_PER_DAY:
        raise TooManyMails("too many mails for this address today: please try again tomorrow")
    actor = _actor()
    do_send_transactional(
        workspace,
        subscriber,
        actor=actor,
        subject=subject,
        body=body,
        body_format="text",
        data={"url": url, "sender": sender_of(workspace)},
    )
    audit(MAIL_EVENT, actor=actor, workspace=workspace, obj=subscriber, new={"kind": kind})


def _words(language: str, key: str) -> str:
    """A mail's words (a Jinja template for the engine: only the hours go in here)."""
    return page_text(language, key).replace("{hours}", str(SELF_SERVICE_HOURS))


def self_service_url(kind: str, subscriber: Subscriber) -> str:
    token = make_self_service_token(kind, subscriber.workspace_id, subscriber.pk)
    name = "signup-manage-data" if kind == DATA else "signup-manage-erase"
    return settings.BASE_URL + reverse(name, args=[token])


@transaction.atomic
def do_request_data_mail(subscriber: Subscriber, *, visitor: Visitor, language: str = "en") -> None:
    """Mails the person a link to their data (expires after SELF_SERVICE_HOURS), in the
    page's language. Raises TooManyMails, or the engine's refusal (an address that bounced or
    complained)."""
    _mail(
        subscriber,
        subject=_words(language, "data_subject"),
        body=_words(language, "data_body"),
        url=self_service_url(DATA, subscriber),
        kind=DATA,
    )


@transaction.atomic
def do_request_erasure_mail(
    subscriber: Subscriber, *, visitor: Visitor, language: str = "en"
) -> None:
    """Mails the person a link that confirms their erasure (expires after
    SELF_SERVICE_HOURS), in the page's language. Nothing is erased until they press the button
    behind it."""
    _mail(
        subscriber,
        subject=_words(language, "erase_subject"),
        body=_words(language, "erase_body"),
        url=self_service_url(ERASE, subscriber),
        kind=ERASE,
    )


def do_export_own_data(subscriber: Subscriber) -> dict:
    """The same document the staff's export gives (audience.do_export_personal_data), with its
    audit row naming the person as the one who asked."""
    return audience.do_export_personal_data(
        subscriber, actor=Actor.system("data download by the person")
    )


def do_erase_self(subscriber: Subscriber) -> None:
    """The audience's erasure, as the staff's: every row and file naming the person, the
    address kept only as a hash on the suppression list."""
    audience.do_erase_subscriber(subscriber, actor=Actor.system("erasure by the person"))
