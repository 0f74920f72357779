"""“I did this by mistake”: undoing an unsubscribe from the page that confirmed it
(docs/unsubscribe.md).

`POST /f/u/<token>/undo`, with the same token as the unsubscribe link and a CSRF token (this is
a button on our page, never a mail client's one-click post). The CSRF token is the page's own,
not Django's cookie pair: the unsubscribe pages set no cookie (a link from a message must not
leave anything in the browser), so the form carries `confirm`, the link's token signed for this
purpose by the page that offered the button (form_token), and the view checks it. A request
made elsewhere, without that page, is refused with 403 and changes nothing.

Within UNDO_WINDOW of the unsubscribe, the memberships the person ended themselves through this
link's lists are renewed, each with a new grant in the consent ledger (source: the subscriber,
with IP and browser where the workspace keeps them); a membership that was confirmed comes back
confirmed (the link reached their mailbox), one that never was comes back unconfirmed.
Unsubscribes by anyone else (staff, a bounce, a complaint) and older ones are not undone here,
and neither is "unsubscribe from everything": the do-not-mail list is lifted only by confirming
a sign-up again (audience.subscribing, pending re-consent).
"""

from __future__ import annotations

from datetime import timedelta

from django.core import signing
from django.utils.timezone import now
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from mailmarketer.accounts.access import public_view
from mailmarketer.accounts.actions import ActionError
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience.actions import ConsentSource, Reason, do_subscribe
from mailmarketer.audience.emails import mask_email
from mailmarketer.audience.models import ConsentRecord, MailingList, Subscription
from mailmarketer.audience.tokens import read_unsubscribe_token
from mailmarketer.lib.http import client_ip

from .queries import UnsubscribeTarget, is_suppressed, language_of, unsubscribe_target
from .texts_pages import page_text
from .views import _invalid_page, _page, _sender_name

UNDO_WINDOW = timedelta(days=7)
UNDO_LABEL = "Unsubscribe page: undone (by mistake)"
UNDO_SALT = "mailmarketer.signup.unsubscribe-undo"


def form_token(token: str) -> str:
    """The value the undo form posts as `confirm`: this link's token, signed and dated."""
    return signing.dumps(token, salt=UNDO_SALT, compress=True)


def _form_token_valid(token: str, value: str) -> bool:
    try:
        return signing.loads(value, salt=UNDO_SALT, max_age=UNDO_WINDOW) == token
    except signing.BadSignature:  # SignatureExpired included
        return False


def undoable(target: UnsubscribeTarget) -> list[Subscription]:
    """The memberships of the link's lists that the person ended themselves within
    UNDO_WINDOW, by list name."""
    if target.subscriber is None:
        return []
    qs = Subscription.objects.filter(
        subscriber=target.subscriber,
        status=Subscription.Status.UNSUBSCRIBED,
        status_reason=Subscription.Reason.BY_SUBSCRIBER,
        unsubscribed_at__gte=now() - UNDO_WINDOW,
    ).select_related("mailing_list")
    if target.lists is not None:
        qs = qs.filter(mailing_list__in=target.lists)
    return list(qs.order_by("mailing_list__name", "pk"))


@public_view
@csrf_exempt  # checked below, with the page's own token: these pages set no cookie
@require_POST
def unsubscribe_undo(request, token: str):
    parsed = read_unsubscribe_token(token)
    target = unsubscribe_target(parsed) if parsed else None
    if target is None or target.subscriber is None:
        return _invalid_page(request)
    subscriber = target.subscriber
    language = language_of(subscriber)
    if not _form_token_valid(token, request.POST.get("confirm", "")):
        context = {"problem": page_text(language, "undo_out_of_date"), "language": language}
        return _page(request, "signup/resubscribed.html", context, status=403)
    context = {
        "address": mask_email(subscriber.email),
        "sender": _sender_name(target),
        "language": language,
    }
    ended = undoable(target)
    if is_suppressed(target) or not ended:
        context["problem"] = (
            page_text(language, "undo_suppressed")
            if is_suppressed(target)
            else page_text(language, "undo_nothing", days=UNDO_WINDOW.days)
        )
        return _page(request, "signup/resubscribed.html", context, status=409)
    source = ConsentSource(
        type=ConsentRecord.SourceType.SUBSCRIBER,
        id=str(target.campaign_id or ""),
        label=UNDO_LABEL,
        ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
    )
    actor = Actor.system("unsubscribe undone")
    confirmed: list[MailingList] = [s.mailing_list for s in ended if s.confirmed_at]
    unconfirmed: list[MailingList] = [s.mailing_list for s in ended if not s.confirmed_at]
    try:
        for lists, was_confirmed in ((confirmed, True), (unconfirmed, False)):
            if lists:
                do_subscribe(
                    subscriber,
                    lists,
                    actor=actor,
                    reason=Reason.BY_SUBSCRIBER,
                    source=source,
                    confirmed=was_confirmed,
                    resubscribe=True,
                )
    except ActionError:  # blocklisted by staff meanwhile: nothing was renewed
        context["problem"] = page_text(language, "undo_stopped")
        return _page(request, "signup/resubscribed.html", context, status=409)
    context["lists"] = [s.mailing_list.name for s in ended]
    return _page(request, "signup/resubscribed.html", context)
