"""Reads for the signup pages: what an unsubscribe link points at, forms, their submissions
and the confirmations they started."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils.timezone import now

from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import queries as audience_queries
from mailmarketer.audience.actions import suppression_for
from mailmarketer.audience.models import ConsentRecord, MailingList, Subscriber, Subscription
from mailmarketer.audience.tokens import UnsubscribeRequest
from mailmarketer.campaigns.models import Campaign

from .models import Confirmation, Form, FormViews, Submission, WelcomeMessage


@dataclass
class UnsubscribeTarget:
    request: UnsubscribeRequest
    # None when the person is gone (erased or deleted since the message was sent): there is
    # nothing left to do, and the page must not say more than that.
    subscriber: Subscriber | None
    # The campaign's lists; None means every list (no campaign named, the campaign deleted
    # since, or a campaign sent to a segment without lists).
    lists: list[MailingList] | None

    @property
    def campaign_id(self) -> int | None:
        return self.request.campaign_id


def _campaign_lists(workspace_id: int, campaign_id: int) -> list[MailingList]:
    through = Campaign.lists.through.objects.filter(campaign_id=campaign_id)
    return list(
        MailingList.objects.filter(
            workspace_id=workspace_id, pk__in=through.values("mailinglist_id")
        ).order_by("name")
    )


def unsubscribe_target(request: UnsubscribeRequest) -> UnsubscribeTarget | None:
    """What a verified token points at, or None when it names a campaign of another workspace
    (a token we never make: treated as not valid)."""
    lists = None
    if request.campaign_id:
        owner = (
            Campaign.objects.filter(pk=request.campaign_id)
            .values_list("workspace_id", flat=True)
            .first()
        )
        if owner is not None and owner != request.workspace_id:
            return None
        if owner is not None:
            lists = _campaign_lists(request.workspace_id, request.campaign_id) or None
    subscriber = (
        Subscriber.objects.select_related("workspace")
        .filter(workspace_id=request.workspace_id, pk=request.subscriber_id)
        .first()
    )
    return UnsubscribeTarget(request, subscriber, lists)


def active_subscriptions(target: UnsubscribeTarget) -> list[Subscription]:
    """The person's memberships the link would end (not yet unsubscribed), by list name."""
    if target.subscriber is None:
        return []
    qs = (
        Subscription.objects.filter(subscriber=target.subscriber)
        .exclude(status=Subscription.Status.UNSUBSCRIBED)
        .select_related("mailing_list")
        .order_by("mailing_list__name")
    )
    if target.lists is not None:
        qs = qs.filter(mailing_list__in=target.lists)
    return list(qs)


def is_suppressed(target: UnsubscribeTarget) -> bool:
    if target.subscriber is None:
        return False
    return suppression_for(target.subscriber.workspace, target.subscriber.email) is not None


# -- forms -----------------------------------------------------------------------------------


def slug_taken(workspace, slug: str, *, but: int | None = None) -> bool:
    return Form.objects.filter(workspace=workspace, slug=slug).exclude(pk=but).exists()


def forms_for(workspace) -> list[Form]:
    """The workspace's forms by name, each with `submission_count` (all time)."""
    return list(
        Form.objects.filter(workspace=workspace)
        .annotate(submission_count=Count("submissions"))
        .order_by("name", "pk")
    )


def get_form(workspace, key) -> Form | None:
    """A form of the workspace by id (API, staff pages) or slug."""
    forms = Form.objects.filter(workspace=workspace).select_related("notice", "workspace")
    if isinstance(key, int) or str(key).isdigit():
        return forms.filter(pk=int(key)).first()
    return forms.filter(slug=str(key)).first()


def public_form(workspace_slug: str, form_slug: str) -> Form | None:
    return (
        Form.objects.filter(workspace__slug=workspace_slug, slug=form_slug)
        .select_related("workspace", "notice", "tracking_notice")
        .first()
    )


def offered_lists(form: Form) -> list[MailingList]:
    return list(form.lists.order_by("name", "pk"))


def form_lists(form: Form, list_ids: list[int]) -> list[MailingList]:
    """The form's lists among these ids (all of them for a fixed-list form)."""
    return list(form.lists.filter(pk__in=list_ids).order_by("pk"))


def daily_counts(form: Form, days: int = 30) -> list[tuple[date, int, int]]:
    """(day, page views, submissions) per UTC day for the last `days` days, oldest first,
    days without any as zeros."""
    today = now().astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    submissions = dict(
        Submission.objects.filter(form=form, created_at__gte=datetime.combine(first, time(), UTC))
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values_list("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
    )
    views = dict(FormViews.objects.filter(form=form, day__gte=first).values_list("day", "views"))
    every = [first + timedelta(days=i) for i in range(days)]
    return [(day, views.get(day, 0), submissions.get(day, 0)) for day in every]


def submissions_page(form: Form, *, before_id: int | None, limit: int):
    """Newest first; (page, the id to pass as before_id for the next page or None)."""
    rows = Submission.objects.filter(form=form).select_related("subscriber").order_by("-pk")
    if before_id is not None:
        rows = rows.filter(pk__lt=before_id)
    page = list(rows[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return page, (page[-1].pk if more and page else None)


# -- submissions and confirmations -----------------------------------------------------------


def subscriber_by_email(workspace, email: str) -> Subscriber | None:
    # The audience's one rule of address equality: the whole address, whatever its case.
    return audience_queries.subscriber_by_email(workspace, email)


def membership_statuses(subscriber: Subscriber, lists) -> dict[int, str]:
    return dict(
        Subscription.objects.filter(
            subscriber=subscriber, mailing_list__in=list(lists)
        ).values_list("mailing_list_id", "status")
    )


def unconfirmed_subscriptions(subscriber: Subscriber, lists) -> list[Subscription]:
    return list(
        Subscription.objects.filter(
            subscriber=subscriber,
            mailing_list__in=list(lists),
            status=Subscription.Status.UNCONFIRMED,
        ).order_by("pk")
    )


def pending_confirmation(workspace, email_hash: str, subscriber) -> Confirmation | None:
    return (
        Confirmation.objects.filter(
            workspace=workspace,
            email_hash=email_hash,
            subscriber=subscriber,
            status=Confirmation.Status.PENDING,
            expires_at__gt=now(),
        )
        .order_by("-created_at", "-pk")
        .first()
    )


def get_confirmation(confirmation_id: int) -> Confirmation | None:
    return (
        Confirmation.objects.filter(pk=confirmation_id)
        .select_related("subscriber__workspace")
        .first()
    )


def confirmation_language(confirmation: Confirmation) -> str:
    """The language of the form that started the confirmation (its first list's)."""
    item = confirmation.items.select_related("submission__form").order_by("pk").first()
    return item.submission.form.language if item else "en"


def welcome_message(mailing_list: MailingList) -> WelcomeMessage | None:
    return WelcomeMessage.objects.filter(mailing_list=mailing_list).first()


def lists_with_welcome(form: Form) -> list[dict]:
    """The form's lists, each with whether it has a welcome message."""
    lists = offered_lists(form)
    welcomed = set(
        WelcomeMessage.objects.filter(mailing_list__in=lists).values_list(
            "mailing_list_id", flat=True
        )
    )
    return [{"list": m, "welcome": m.pk in welcomed} for m in lists]


# -- preference centre -----------------------------------------------------------------------


def manage_subscriber(workspace_id: int, subscriber_id: int) -> Subscriber | None:
    """The person a preference-centre or self-service token names, in the workspace it names;
    None when they are gone (erased or deleted since)."""
    return (
        Subscriber.objects.select_related("workspace")
        .filter(workspace_id=workspace_id, pk=subscriber_id)
        .first()
    )


def public_lists(workspace) -> list[MailingList]:
    return list(
        MailingList.objects.filter(
            workspace=workspace, visibility=MailingList.Visibility.PUBLIC
        ).order_by("name", "pk")
    )


def active_list_ids(subscriber: Subscriber) -> set[int]:
    """The lists the person is on (confirmed or waiting for confirmation)."""
    return set(
        Subscription.objects.filter(subscriber=subscriber)
        .exclude(status=Subscription.Status.UNSUBSCRIBED)
        .values_list("mailing_list_id", flat=True)
    )


def other_active_lists(subscriber: Subscriber) -> list[str]:
    """Names of the lists the person is on that the page does not offer (private lists): the
    page says they exist, since "unsubscribe from everything" ends them too."""
    return list(
        Subscription.objects.filter(subscriber=subscriber)
        .exclude(status=Subscription.Status.UNSUBSCRIBED)
        .exclude(mailing_list__visibility=MailingList.Visibility.PUBLIC)
        .order_by("mailing_list__name")
        .values_list("mailing_list__name", flat=True)
    )


def self_service_mails_since(subscriber: Subscriber, event: str, since) -> int:
    return AuditEvent.objects.filter(
        workspace_id=subscriber.workspace_id,
        event=event,
        object_type="subscriber",
        object_id=str(subscriber.pk),
        at__gte=since,
    ).count()


def tracking_records(subscriber: Subscriber) -> list[ConsentRecord]:
    """The person's activity-tracking consent records, newest first, with their notices."""
    return list(
        ConsentRecord.objects.filter(
            workspace_id=subscriber.workspace_id, subscriber=subscriber, purpose="tracking"
        )
        .select_related("notice")
        .order_by("-at", "-pk")
    )


def language_of(subscriber: Subscriber | None) -> str:
    """The language of the pages a person reaches from their mail: the one of the last form
    they used (its submission names them), else English."""
    if subscriber is None:
        return "en"
    language = (
        Submission.objects.filter(subscriber=subscriber)
        .order_by("-pk")
        .values_list("form__language", flat=True)
        .first()
    )
    return language or "en"
