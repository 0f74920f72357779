"""Webinar pages (docs/webinars.md).

Public: the event on its webinar form's page (never the join URL), and the cancel link
`/f/w/<token>`: GET shows one button and changes nothing (mail scanners open links), POST
cancels.

Staff, under /app/<ws>/events/: the list, create, edit (moving mails the registrants), cancel,
an event's page (registrants, waiting list, attendance by hand or from a CSV of addresses) and
its CSV export. Reading needs forms.view, changes forms.manage, the export audience.export;
addresses are masked without audience.view_personal_data, and an unmasked list is audited.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import public_view, workspace_view
from mailmarketer.accounts.actions import ActionError, audit
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience.actions import record_subscribers_listed
from mailmarketer.audience.emails import mask_email

from . import queries_webinars as queries
from . import webinars
from .fields import FormError
from .models import Form
from .models_webinars import Event, Registration
from .texts_webinars import wtext
from .views import _public
from .webinars import closed_reason, event_of, when_text

# -- public ------------------------------------------------------------------------------------


def webinar_page_context(form: Form, errors: dict | None = None) -> dict:
    """What a webinar form's page adds: the event (title, time in its zone, length and
    description; never the join URL) and why registration is closed, if it is."""
    if form.kind != Form.Kind.WEBINAR:
        return {}
    event = event_of(form)
    if event is None:
        return {}
    language = form.language
    reason = closed_reason(event)
    return {
        "event_info": {
            "title": event.title,
            "when_label": wtext(language, "when"),
            "when": when_text(event),
            "duration": wtext(language, "duration", minutes=event.duration_minutes),
            "description": event.description,
            "closed": wtext(language, reason) if reason else "",
        },
        "event_error": (errors or {}).get("event", ""),
        "submit_label": wtext(language, "register"),
    }


def webinar_thanks(form: Form) -> str:
    return wtext(form.language, "thanks") if form.kind == Form.Kind.WEBINAR else ""


@public_view
@csrf_exempt  # the signed token in the URL is the authority, as for unsubscribe links
@require_http_methods(["GET", "HEAD", "POST"])
def cancel(request, token: str):
    registration = webinars.read_cancel_token(token)
    if registration is None:
        context = {"message": wtext("en", "cancel_invalid"), "language": "en"}
        return _public(render(request, "signup/confirm_done.html", context, status=400))
    event = registration.event
    language = event.language
    workspace = event.workspace
    sender = workspace.sender_name or workspace.name
    done = {"language": language, "sender": sender}
    if registration.status == Registration.Status.CANCELLED:
        context = {**done, "message": wtext(language, "cancel_done")}
        return _public(render(request, "signup/confirm_done.html", context))
    if event.status != Event.Status.SCHEDULED or datetime.now(event.starts_at.tzinfo) >= (
        event.starts_at
    ):
        context = {**done, "message": wtext(language, "cancel_over")}
        return _public(render(request, "signup/confirm_done.html", context, status=400))
    if request.method != "POST":
        context = {
            **done,
            "title": wtext(language, "cancel_title"),
            "intro": wtext(
                language,
                "cancel_intro",
                address=mask_email(registration.subscriber.email),
                title=event.title,
                when=when_text(event),
            ),
            "button": wtext(language, "cancel_button"),
        }
        return _public(render(request, "signup/confirm.html", context))
    actor = Actor.system("webinar cancel link")
    webinars.do_cancel_registration(registration, actor=actor)
    context = {**done, "message": wtext(language, "cancel_done")}
    return _public(render(request, "signup/confirm_done.html", context))


# -- staff ---------------------------------------------------------------------------------------


def _zone_choices():
    return [(zone, zone) for zone in sorted(webinars._zones())]


class EventForm(forms.Form):
    title = forms.CharField(max_length=200)
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}), required=False, max_length=5000
    )
    start = forms.DateTimeField(
        label="Starts",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
        help_text="In the event's time zone.",
    )
    timezone = forms.ChoiceField(label="Time zone", initial="UTC")
    duration_minutes = forms.IntegerField(label="Length (minutes)", min_value=1, initial=60)
    join_url = forms.URLField(
        label="Join URL",
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text="Sent only to registrants, in their mails and invitation.",
    )
    capacity = forms.IntegerField(label="Seats", min_value=1, initial=100)
    waitlist_capacity = forms.IntegerField(
        label="Waiting list places", min_value=0, initial=0, help_text="0: no waiting list."
    )
    closes = forms.DateTimeField(
        label="Registration closes",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
        help_text="In the event's time zone; empty: at the start.",
    )
    reminders = forms.CharField(
        label="Reminders (minutes before)",
        required=False,
        initial="1440, 60",
        help_text="Comma-separated, e.g. 1440, 60 for a day and an hour before.",
    )
    language = forms.ChoiceField(choices=Event.Language.choices, initial=Event.Language.ENGLISH)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["timezone"].choices = _zone_choices()

    def clean_reminders(self):
        values = []
        for part in (self.cleaned_data.get("reminders") or "").split(","):
            if part.strip():
                try:
                    values.append(int(part.strip()))
                except ValueError:
                    raise forms.ValidationError("whole numbers of minutes, e.g. 1440, 60") from None
        return values

    @classmethod
    def initial_for(cls, event: Event) -> dict:
        local = webinars.ics.local_start(event)
        closes = event.registration_closes_at
        return {
            "title": event.title,
            "description": event.description,
            "start": local.replace(tzinfo=None),
            "timezone": event.timezone,
            "duration_minutes": event.duration_minutes,
            "join_url": event.join_url,
            "capacity": event.capacity,
            "waitlist_capacity": event.waitlist_capacity,
            "closes": closes.astimezone(local.tzinfo).replace(tzinfo=None) if closes else None,
            "reminders": ", ".join(str(m) for m in event.reminder_offsets),
            "language": event.language,
        }

    def fields_for_action(self) -> dict:
        data = self.cleaned_data
        zone = data["timezone"]
        start = data["start"].replace(tzinfo=None)
        closes = data.get("closes")
        return {
            "title": data["title"],
            "description": data["description"],
            "starts_at": webinars.starts_at_from_local(start, zone),
            "timezone": zone,
            "duration_minutes": data["duration_minutes"],
            "join_url": data["join_url"],
            "capacity": data["capacity"],
            "waitlist_capacity": data["waitlist_capacity"],
            "registration_closes_at": (
                webinars.starts_at_from_local(closes.replace(tzinfo=None), zone) if closes else None
            ),
            "reminder_offsets": data["reminders"],
            "language": data["language"],
        }


class AttendanceImportForm(forms.Form):
    file = forms.FileField(label="CSV of addresses", help_text="One address a line (first column).")


def _event_or_404(request, event_id: int) -> Event:
    event = queries.get_event(request.workspace, event_id)
    if event is None:
        raise Http404("No such event in this workspace")
    return event


@workspace_view(p.FORMS_VIEW)
@require_GET
def events_home(request):
    context = {
        "events": queries.events_for(request.workspace),
        "can_manage": request.membership.has(p.FORMS_MANAGE),
    }
    return render(request, "signup/events.html", context)


def _save_event(request, editor: EventForm, event: Event | None):
    actor = Actor.from_request(request)
    try:
        fields = editor.fields_for_action()
        if event is None:
            return webinars.do_create_event(request.workspace, actor=actor, **fields)
        return webinars.do_update_event(event, fields, actor=actor)
    except FormError as exc:
        names = {
            "starts_at": "start",
            "registration_closes_at": "closes",
            "reminder_offsets": "reminders",
        }
        field = names.get(exc.field, exc.field)
        editor.add_error(field if field in editor.fields else None, str(exc))
    except ActionError as exc:
        editor.add_error(None, str(exc))
    return None


@workspace_view(p.FORMS_MANAGE)
@require_http_methods(["GET", "POST"])
def event_create(request):
    editor = EventForm(request.POST or None)
    if request.method == "POST" and editor.is_valid():
        event = _save_event(request, editor, None)
        if event is not None:
            messages.success(request, f"The webinar “{event.title}” was created.")
            return redirect("events-detail", ws=request.workspace.slug, event_id=event.pk)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "signup/event_edit.html", {"editor": editor, "event": None}, status=status
    )


@workspace_view(p.FORMS_MANAGE)
@require_http_methods(["GET", "POST"])
def event_edit(request, event_id: int):
    event = _event_or_404(request, event_id)
    if request.method == "POST":
        editor = EventForm(request.POST)
        if editor.is_valid() and _save_event(request, editor, event) is not None:
            messages.success(request, "Saved. Registrants were mailed any change of time or place.")
            return redirect("events-detail", ws=request.workspace.slug, event_id=event.pk)
        return render(
            request, "signup/event_edit.html", {"editor": editor, "event": event}, status=400
        )
    editor = EventForm(initial=EventForm.initial_for(event))
    return render(request, "signup/event_edit.html", {"editor": editor, "event": event})


@workspace_view(p.FORMS_MANAGE)
@require_POST
def event_cancel(request, event_id: int):
    event = _event_or_404(request, event_id)
    webinars.do_cancel_event(event, actor=Actor.from_request(request))
    messages.success(request, "The webinar is cancelled; everyone registered was mailed.")
    return redirect("events-detail", ws=request.workspace.slug, event_id=event.pk)


def _rows(request, event: Event, status: str) -> list[dict]:
    unmasked = request.membership.has(p.VIEW_PERSONAL_DATA)
    rows = []
    for registration in queries.registrations_of(event, status):
        email = registration.subscriber.email
        rows.append(
            {
                "id": registration.pk,
                "email": email if unmasked else mask_email(email),
                "name": registration.name if unmasked else "",
                "registered_at": registration.registered_at,
                "attended": registration.attended,
            }
        )
    return rows


@workspace_view(p.FORMS_VIEW)
@require_GET
def event_detail(request, event_id: int):
    event = _event_or_404(request, event_id)
    registered = _rows(request, event, Registration.Status.REGISTERED)
    waiting = _rows(request, event, Registration.Status.WAITLISTED)
    if request.membership.has(p.VIEW_PERSONAL_DATA) and (registered or waiting):
        record_subscribers_listed(
            request.workspace,
            count=len(registered) + len(waiting),
            actor=Actor.from_request(request),
        )
    context = {
        "event": event,
        "when": when_text(event),
        "registered": registered,
        "waiting": waiting,
        "attended": sum(1 for r in registered if r["attended"]),
        "can_manage": request.membership.has(p.FORMS_MANAGE),
        "can_export": request.membership.has(p.AUDIENCE_EXPORT),
        "import_form": AttendanceImportForm(),
        "problems": request.session.pop("attendance_problems", []),
    }
    return render(request, "signup/event_detail.html", context)


@workspace_view(p.FORMS_MANAGE)
@require_POST
def attendance_mark(request, event_id: int, registration_id: int):
    event = _event_or_404(request, event_id)
    registration = queries.get_registration(event, registration_id)
    if registration is None:
        raise Http404("No such registration")
    attended = request.POST.get("attended") == "1"
    try:
        webinars.do_set_attendance(registration, attended, actor=Actor.from_request(request))
    except ActionError as exc:
        messages.error(request, str(exc))
    return redirect("events-detail", ws=request.workspace.slug, event_id=event.pk)


@workspace_view(p.FORMS_MANAGE)
@require_POST
def registration_cancel(request, event_id: int, registration_id: int):
    """Staff cancel one person's place (they asked by phone, a duplicate): the same action as
    the person's own cancel link, so the seat goes to the first on the waiting list, the person
    gets the cancellation with its .ics, and the audit row names the staff member."""
    event = _event_or_404(request, event_id)
    registration = queries.get_registration(event, registration_id)
    if registration is None:
        raise Http404("No such registration")
    if webinars.do_cancel_registration(registration, actor=Actor.from_request(request)):
        messages.success(request, "The registration is cancelled and its seat freed.")
    else:
        messages.error(request, "That registration was cancelled already.")
    return redirect("events-detail", ws=request.workspace.slug, event_id=event.pk)


@workspace_view(p.FORMS_MANAGE)
@require_POST
def attendance_import(request, event_id: int):
    event = _event_or_404(request, event_id)
    upload = AttendanceImportForm(request.POST, request.FILES)
    if not upload.is_valid():
        messages.error(request, "Choose a CSV file of addresses.")
        return redirect("events-detail", ws=request.workspace.slug, event_id=event.pk)
    uploaded = upload.cleaned_data["file"]
    data = uploaded.read(webinars.MAX_IMPORT_BYTES + 1)
    try:
        marked, problems = webinars.do_import_attendance(
            event, data, actor=Actor.from_request(request)
        )
    except ActionError as exc:
        messages.error(request, f"Nothing imported: {exc}")
        return redirect("events-detail", ws=request.workspace.slug, event_id=event.pk)
    messages.success(request, f"{marked} marked as attended; {len(problems)} lines not used.")
    request.session["attendance_problems"] = problems
    return redirect("events-detail", ws=request.workspace.slug, event_id=event.pk)


def _as_text(cell: str) -> str:
    # A cell starting with = + - @ is a formula to a spreadsheet (and "=x@example.com" is a
    # valid address): quote it as text.
    return "'" + cell if cell[:1] in ("=", "+", "-", "@") else cell


def registrants_csv(event: Event, *, unmasked: bool) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["email", "name", "status", "registered_at", "attended"])
    for registration in queries.registrations_of(event):
        email = registration.subscriber.email
        name = registration.name
        if not unmasked:
            email, name = mask_email(email), ""
        writer.writerow(
            [
                _as_text(email),
                _as_text(name),
                registration.status,
                registration.registered_at.isoformat(),
                "yes" if registration.attended else "no",
            ]
        )
    return out.getvalue()


@workspace_view(p.AUDIENCE_EXPORT)
@require_GET
def event_export(request, event_id: int):
    event = _event_or_404(request, event_id)
    unmasked = request.membership.has(p.VIEW_PERSONAL_DATA)
    body = registrants_csv(event, unmasked=unmasked)
    audit(
        "webinar.exported",
        actor=Actor.from_request(request),
        workspace=request.workspace,
        obj=event,
        new={"masked": not unmasked, "rows": body.count("\n") - 1},
    )
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="webinar-{event.pk}.csv"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
