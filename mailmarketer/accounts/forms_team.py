"""Forms of the workspace pages (team, API tokens, audit log, workspace settings).

They only validate input; the writes go through actions.py. Django renders `aria-invalid` and
an `aria-describedby` naming the help text and the error list of each field (see
accounts/settings_field.html).
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime, time, timedelta

from django import forms
from django.utils.html import format_html, format_html_join

from mailmarketer.lib.text import validate_one_line, validate_text

from .models import TrackingMode
from .permissions import OWNER_ONLY_ROLES, Role


def role_choices(actor_role: str) -> list[tuple[str, str]]:
    """The roles this actor may hand out: only an owner can make an owner, so others are not
    even offered it (actions.py refuses it anyway)."""
    return [
        (value, label)
        for value, label in Role.choices
        if actor_role == Role.OWNER or value not in OWNER_ONLY_ROLES
    ]


class Form(forms.Form):
    """Labels without the trailing colon; settings_field.html lays the field out."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class InviteForm(Form):
    email = forms.EmailField(
        label="Email address",
        max_length=254,
        help_text="We send an invitation link to this address; it works once, for 7 days.",
    )
    role = forms.ChoiceField(label="Role")

    def __init__(self, *args, actor_role: str, **kwargs):
        kwargs.setdefault("prefix", "invite")
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = role_choices(actor_role)
        self.fields["role"].initial = Role.MARKETER


class TokenForm(Form):
    name = forms.CharField(
        label="Name",
        max_length=100,
        help_text="What uses this token, for example “CRM sync”.",
    )
    role = forms.ChoiceField(
        label="Role",
        help_text="The token can do what a member with this role can do, in this workspace only.",
    )

    def __init__(self, *args, actor_role: str, **kwargs):
        kwargs.setdefault("prefix", "token")
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = role_choices(actor_role)
        self.fields["role"].initial = Role.MARKETER


class DateInput(forms.DateInput):
    input_type = "date"


class AuditFilterForm(Form):
    """Filters of the audit log. Dates are days in the workspace's time zone, both inclusive."""

    event = forms.ChoiceField(label="Event", required=False)
    actor = forms.CharField(
        label="Actor",
        required=False,
        max_length=200,
        help_text="Part of an email address or token name.",
    )
    since = forms.DateField(label="From", required=False, widget=DateInput)
    until = forms.DateField(label="To", required=False, widget=DateInput)

    def __init__(self, *args, event_types: list[str], tz: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.tz = zoneinfo.ZoneInfo(tz)
        self.fields["event"].choices = self.event_choices(event_types)

    @staticmethod
    def event_choices(event_types: list[str]) -> list[tuple[str, str]]:
        """Each family ("member.") as "all member events", then each event under it."""
        choices: list[tuple[str, str]] = [("", "All events")]
        families: dict[str, list[str]] = {}
        for name in event_types:
            families.setdefault(name.split(".", 1)[0], []).append(name)
        for family, names in families.items():
            choices.append((f"{family}.", f"{family}.* (all {family} events)"))
            choices.extend((name, name) for name in names)
        return choices

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "The “To” date is before the “From” date.")
        return data

    def filters(self) -> dict:
        """Keyword arguments for queries.audit_events, from valid data."""
        data = self.cleaned_data
        since = until = None
        if data.get("since"):
            since = datetime.combine(data["since"], time.min, tzinfo=self.tz)
        if data.get("until"):
            until = datetime.combine(data["until"] + timedelta(days=1), time.min, tzinfo=self.tz)
        return {
            "event": data.get("event") or "",
            "actor": (data.get("actor") or "").strip(),
            "since": since,
            "until": until,
        }


# Names in the tz database that are not places: "localtime" is whatever the server is set to.
NOT_A_PLACE = frozenset({"localtime", "Factory", "posixrules"})


def timezone_choices(current: str = "") -> list[tuple[str, str]]:
    names = set(zoneinfo.available_timezones()) - NOT_A_PLACE
    if current:
        names.add(current)  # never silently change a stored value by leaving it out
    return [(name, name) for name in sorted(names)]


class ZoneInput(forms.TextInput):
    """A text box with the ~600 zones as its suggestions (a <datalist>): typing "berl" offers
    Europe/Berlin in any browser, with or without JavaScript, where a select of 600 entries
    offers only scrolling."""

    def __init__(self, attrs=None):
        super().__init__({"autocomplete": "off", "spellcheck": "false", **(attrs or {})})
        self.choices: list = []

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["widget"]["attrs"]["list"] = f"{context['widget']['attrs'].get('id', name)}_zones"
        return context

    def render(self, name, value, attrs=None, renderer=None):
        box = super().render(name, value, attrs, renderer)
        list_id = f"{(attrs or {}).get('id') or self.attrs.get('id') or name}_zones"
        options = format_html_join("", '<option value="{}">', ((v,) for v, _ in self.choices))
        return format_html('{}<datalist id="{}">{}</datalist>', box, list_id, options)


class ZoneField(forms.ChoiceField):
    """A zone name, typed: taken as written, or with any case and spaces for underscores
    ("europe/berlin", "New York"), or by its place alone when only one zone has that name
    ("Berlin"). Anything else is refused with what to type instead."""

    widget = ZoneInput

    def to_python(self, value):
        text = super().to_python(value).strip()
        names = [name for name, _ in self.choices]
        if not text or text in names:
            return text
        wanted = text.replace(" ", "_").casefold()
        same = [n for n in names if n.casefold() == wanted]
        if len(same) == 1:
            return same[0]
        places = [n for n in names if n.rpartition("/")[2].casefold() == wanted]
        if len(places) == 1:
            return places[0]
        if len(places) > 1:
            raise forms.ValidationError(
                "%(value)s is the name of several time zones: choose one of %(names)s.",
                code="ambiguous",
                params={"value": text, "names": ", ".join(places)},
            )
        return text

    def validate(self, value):
        if value and not self.valid_value(value):
            raise forms.ValidationError(
                "%(value)s is not one of the available time zones: type a place and pick from "
                "the suggestions, for example Europe/Berlin.",
                code="invalid_choice",
                params={"value": value},
            )
        super().validate(value)


class WorkspaceSettingsForm(Form):
    """The editable workspace fields (actions.WORKSPACE_EDITABLE). A plain form, not a
    ModelForm: a ModelForm would change the workspace object while validating, and
    do_update_workspace needs the old values to audit the change."""

    name = forms.CharField(label="Workspace name", max_length=100, validators=[validate_one_line])
    sender_name = forms.CharField(
        label="Sender name",
        max_length=100,
        required=False,
        validators=[validate_one_line],
        help_text="The name your marketing mail comes from, for example your company's name.",
    )
    sender_email = forms.EmailField(
        label="Sender email address",
        max_length=254,
        required=False,
        help_text="The address your marketing mail comes from.",
    )
    postal_address = forms.CharField(
        label="Postal address",
        required=False,
        validators=[validate_text],
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=(
            "Marketing mail must carry your postal address (the law in many countries requires "
            "it); it is printed in the footer of every campaign, and campaigns cannot start "
            "while it is empty."
        ),
    )
    timezone = ZoneField(
        label="Time zone",
        help_text=(
            "Used for schedules, reports and the times shown in this workspace. Type a city or "
            "region (for example Berlin or America/New_York) and pick it from the suggestions."
        ),
    )
    require_2fa = forms.BooleanField(
        label="Require two-factor authentication",
        required=False,
        help_text=(
            "Members whose role can see personal data must use two-factor authentication; "
            "those who have not set it up are asked to before they can continue."
        ),
    )
    consent_store_ip = forms.BooleanField(
        label="Keep the IP address and browser with each consent",
        required=False,
        help_text="Keep the IP address and browser of people giving consent, as evidence.",
    )
    tracking_mode = forms.ChoiceField(
        label="Email tracking",
        choices=TrackingMode.choices,
        help_text=(
            "Identified: opens and clicks are linked to the person (segments and their activity "
            "page use them). Anonymous: counted only. Off: links are not rewritten and no open "
            "pixel is added. A campaign can override this."
        ),
    )
    tracking_requires_consent = forms.BooleanField(
        label="Identified tracking needs the person's tracking consent",
        required=False,
        help_text=(
            "When on, people without a tracking consent are counted anonymously, whatever the "
            "mode says."
        ),
    )

    def __init__(self, *args, current_timezone: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["timezone"].choices = timezone_choices(current_timezone)

    @classmethod
    def initial_for(cls, workspace) -> dict:
        return {name: getattr(workspace, name) for name in cls.base_fields}
