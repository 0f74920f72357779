"""Staff pages of bounces and complaints: the list (filters, keyset pages) and one report with
its raw message and the ledger row it matched.

Everything in a report came from outside: it is only ever shown escaped (Django's autoescape;
the raw message inside <pre>), and for roles without audience.view_personal_data every address
in it is masked (our own return path kept: it names nobody). An unmasked look is audited, as the
ledger's is."""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import public_view, workspace_view
from mailmarketer.accounts.actions import audit
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import actions as audience_actions
from mailmarketer.audience.emails import mask_addresses_in, mask_email

from . import queries, webhooks
from .models import Bounce

RAW_SHOWN = 200_000  # characters of the raw message shown on the page


class BounceFilterForm(forms.Form):
    kind = forms.ChoiceField(choices=[("", "Any kind"), *Bounce.Kind.choices], required=False)
    outcome = forms.ChoiceField(
        choices=[("", "Any outcome"), *Bounce.Outcome.choices], required=False
    )
    channel = forms.ChoiceField(
        choices=[("", "Any channel"), *Bounce.Channel.choices], required=False
    )
    before = forms.IntegerField(required=False, min_value=1, max_value=2**62)


def _ours(address: str) -> bool:
    return address.lower().startswith("bounces+") or address.lower().startswith("bounces@")


def shown(text: str, reveal: bool) -> str:
    return text if reveal else mask_addresses_in(text, keep=_ours)


def _row(bounce: Bounce, reveal: bool) -> dict:
    address = bounce.address
    return {
        "b": bounce,
        "address": address if reveal or not address else mask_email(address),
        "diagnostic": shown(bounce.diagnostic, reveal),
        "reason": shown(bounce.reason, reveal),
    }


@workspace_view(p.CAMPAIGNS_VIEW)
@require_GET
def bounces_home(request):
    reveal = request.membership.has(p.VIEW_PERSONAL_DATA)
    form = BounceFilterForm(request.GET)
    rows, before, status = [], None, 200
    if form.is_valid():
        chosen = {k: v for k, v in form.cleaned_data.items() if v not in ("", None)}
        page, before = queries.bounces_page(
            request.workspace,
            kind=chosen.get("kind"),
            outcome=chosen.get("outcome"),
            channel=chosen.get("channel"),
            before=chosen.get("before"),
        )
        rows = [_row(b, reveal) for b in page]
        if reveal and any(b.address for b in page):
            audience_actions.record_subscribers_listed(
                request.workspace, count=len(rows), actor=Actor.from_request(request)
            )
        base = {k: v for k, v in chosen.items() if k != "before"}
    else:
        status, base = 400, {}
    context = {
        "form": form,
        "rows": rows,
        "masked": not reveal,
        "next_url": "?" + urlencode({**base, "before": before}) if before else "",
        "first_url": "?" + urlencode(base),
        "paged": form.is_valid() and form.cleaned_data.get("before") is not None,
    }
    return render(request, "delivery/bounces.html", context, status=status)


# The reports staff must look at: a bounce or complaint that names no delivery of ours, or one
# matched by the address it names alone (shown, not acted on: anyone can mail such a report).
UNMATCHED = (Bounce.Outcome.UNMATCHED, Bounce.Outcome.NOT_ACTED)


class BeforeForm(forms.Form):
    before = forms.IntegerField(required=False, min_value=1, max_value=2**62)


def _matched_person(bounce: Bounce, reveal: bool) -> str:
    """The subscriber a report was matched to by the address it names (not acted on), masked
    for roles without personal data ("" when none, or the person was erased since)."""
    if bounce.subscriber is None:
        return ""
    email = bounce.subscriber.email
    return email if reveal else mask_email(email)


@workspace_view(p.CAMPAIGNS_VIEW)
@require_GET
def bounces_unmatched(request):
    """Reports that came through this workspace's mailbox or webhooks and were not acted on for
    want of a valid key: who sent them and what they say (escaped; addresses masked for roles
    without personal data), so staff can decide, and suppress by hand where they believe one."""
    reveal = request.membership.has(p.VIEW_PERSONAL_DATA)
    form = BeforeForm(request.GET)
    if not form.is_valid():
        return render(
            request, "delivery/bounces_unmatched.html", {"form": form, "rows": []}, status=400
        )
    before = form.cleaned_data.get("before")
    page, next_before = queries.bounces_page(request.workspace, outcomes=UNMATCHED, before=before)
    rows = [
        {
            **_row(b, reveal),
            "sender": shown(b.sender, reveal),
            "subject": shown(b.subject, reveal),
            "matched": _matched_person(b, reveal),
        }
        for b in page
    ]
    if reveal and any(b.address or b.sender for b in page):
        audience_actions.record_subscribers_listed(
            request.workspace, count=len(rows), actor=Actor.from_request(request)
        )
    context = {
        "form": form,
        "rows": rows,
        "masked": not reveal,
        "next_url": "?" + urlencode({"before": next_before}) if next_before else "",
        "paged": before is not None,
    }
    return render(request, "delivery/bounces_unmatched.html", context)


@workspace_view(p.CAMPAIGNS_VIEW)
@require_GET
def bounce_detail(request, bounce_id: int):
    bounce = queries.bounce_for(request.workspace, bounce_id)
    if bounce is None:
        raise Http404("No such bounce")
    reveal = request.membership.has(p.VIEW_PERSONAL_DATA)
    raw = bytes(bounce.raw or b"")[: RAW_SHOWN * 2].decode("utf-8", "replace")[:RAW_SHOWN]
    if reveal:
        audit(
            "bounce.viewed",
            actor=Actor.from_request(request),
            workspace=request.workspace,
            obj=bounce,
        )
    recipient = ""
    if bounce.subscriber is not None:
        recipient = bounce.subscriber.email if reveal else mask_email(bounce.subscriber.email)
    context = {
        "row": _row(bounce, reveal),
        "b": bounce,
        "recipient": recipient,
        "raw": shown(raw, reveal),
        "raw_truncated": bounce.raw_size > RAW_SHOWN,
        "masked": not reveal,
    }
    return render(request, "delivery/bounce.html", context)


@public_view
@csrf_exempt
@require_POST
def webhook(request, provider: str, key: str):
    """A provider's webhook (webhooks.py): no session, no CSRF token (a provider posts with
    neither); its signature, basic auth or SNS signature is the only authority."""
    status, text = webhooks.handle(provider, key, request)
    return HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")


class BounceSettingsForm(forms.Form):
    soft_bounce_limit = forms.IntegerField(
        min_value=1, max_value=100, label="Soft bounces that make a hard bounce"
    )
    soft_bounce_days = forms.IntegerField(min_value=1, max_value=365, label="Within (days)")
    mailgun_signing_key = forms.CharField(
        required=False,
        max_length=200,
        widget=forms.PasswordInput,
        label="Mailgun HTTP webhook signing key",
        help_text="Leave empty to keep the stored key.",
    )
    remove_mailgun_key = forms.BooleanField(required=False, label="Remove the stored Mailgun key")
    sendgrid_public_key = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="SendGrid verification key (public key, base64 or PEM)",
    )
    ses_topic_arns = forms.CharField(
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Amazon SNS topic ARNs of SES notifications (one per line)",
    )


def _webhook_urls(request, key: str) -> dict:
    base = request.build_absolute_uri("/")[:-1]
    return {name: f"{base}/hooks/bounces/{name}/{key}/" for name in webhooks.PROVIDERS}


@workspace_view(p.SETTINGS_VIEW)
def bounce_settings(request):
    from .actions import do_update_bounce_settings
    from .apply import settings_for

    conf = settings_for(request.workspace.pk)
    can_manage = request.membership.has(p.SETTINGS_MANAGE)
    status = 200
    if request.method == "POST":
        if not can_manage:
            return render(
                request, "web/forbidden.html", {"permission": p.SETTINGS_MANAGE}, status=403
            )
        form = BounceSettingsForm(request.POST)
        if form.is_valid():
            do_update_bounce_settings(
                request.workspace, form.cleaned_data, actor=Actor.from_request(request)
            )
            return redirect("bounce-settings", ws=request.workspace.slug)
        status = 400
    else:
        form = BounceSettingsForm(
            initial={
                "soft_bounce_limit": conf.soft_bounce_limit,
                "soft_bounce_days": conf.soft_bounce_days,
                "sendgrid_public_key": conf.sendgrid_public_key,
                "ses_topic_arns": conf.ses_topic_arns,
            }
        )
    context = {
        "form": form,
        "conf": conf,
        "can_manage": can_manage,
        "key_set": bool(conf.webhook_key_hash),
        "mailgun_key_set": bool(conf.mailgun_signing_key),
        "urls": _webhook_urls(request, "<key>"),
    }
    return render(request, "delivery/bounce_settings.html", context, status=status)


@workspace_view(p.SETTINGS_MANAGE)
@require_POST
def bounce_webhook_key(request):
    from .actions import do_reset_webhook_key

    key = do_reset_webhook_key(request.workspace, actor=Actor.from_request(request))
    response = render(
        request,
        "delivery/bounce_webhook_key.html",
        {"urls": _webhook_urls(request, key), "key": key},
    )
    response["Cache-Control"] = "no-store"
    return response


class MailboxForm(forms.Form):
    host = forms.CharField(max_length=255)
    port = forms.IntegerField(min_value=1, max_value=65535, initial=993)
    tls_mode = forms.ChoiceField(choices=[])
    verify_certificate = forms.BooleanField(required=False, initial=True)
    username = forms.CharField(max_length=255)
    password = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.PasswordInput,
        help_text="Stored encrypted, never shown again; leave empty to keep the stored one.",
    )
    folder = forms.CharField(max_length=200, initial="INBOX")
    after = forms.ChoiceField(choices=[], label="Processed messages")
    move_to = forms.CharField(max_length=200, required=False, initial="Processed")
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, **kwargs):
        from .models import BounceMailbox

        super().__init__(*args, **kwargs)
        self.fields["tls_mode"].choices = BounceMailbox.TlsMode.choices
        self.fields["after"].choices = BounceMailbox.After.choices

    def clean_host(self):
        host = self.cleaned_data["host"].strip()
        if any(c.isspace() for c in host) or "/" in host:
            raise forms.ValidationError("a host name or IP address, without spaces or slashes")
        return host


@workspace_view(p.SETTINGS_MANAGE)
def bounce_mailbox(request):
    from mailmarketer.accounts.actions import ActionError

    from .actions import MAILBOX_FIELDS, do_save_bounce_mailbox
    from .models import BounceMailbox

    box = BounceMailbox.objects.filter(workspace=request.workspace).first()
    status = 200
    if request.method == "POST":
        form = MailboxForm(request.POST)
        if form.is_valid():
            try:
                do_save_bounce_mailbox(
                    request.workspace, form.cleaned_data, actor=Actor.from_request(request)
                )
            except ActionError as exc:
                form.add_error(exc.field, str(exc))
            else:
                return redirect("bounce-mailbox", ws=request.workspace.slug)
        status = 400
    else:
        form = MailboxForm(initial={n: getattr(box, n) for n in MAILBOX_FIELDS} if box else None)
    return render(
        request, "delivery/bounce_mailbox.html", {"form": form, "box": box}, status=status
    )


@workspace_view(p.CAMPAIGNS_VIEW)
def deliverability_page(request):
    """Rates and warnings, and the DNS records with a "check now" (POST: lookups leave the
    machine, so a crawler's GET never starts them)."""
    from . import deliverability as d

    if request.method not in ("GET", "POST"):
        return HttpResponse(status=405)
    per_campaign = d.campaign_rates(request.workspace)
    records = d.records_for(request.workspace)
    checked = request.method == "POST"
    if checked:
        d.check(records, resolve=d.resolve_txt)
    context = {
        "per_campaign": per_campaign,
        "per_sending_domain": d.sending_domain_rates(request.workspace, per_campaign),
        "recipient_domains": d.recipient_domain_rates(request.workspace),
        "daily": d.daily_chart(request.workspace),
        "records": records,
        "checked": checked,
        "thresholds": {
            "complaint_warn": d.COMPLAINT_WARN * 100,
            "complaint_alarm": d.COMPLAINT_ALARM * 100,
            "bounce_warn": d.BOUNCE_WARN * 100,
            "bounce_alarm": d.BOUNCE_ALARM * 100,
        },
    }
    return render(request, "delivery/deliverability.html", context)
