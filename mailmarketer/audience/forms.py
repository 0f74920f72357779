"""Forms of the audience pages. They only check input and turn it into what the actions and
queries take; every write goes through actions.py, where addresses are validated (so the person
reads email-validator's reason, not a generic "enter a valid email").

Django renders aria-invalid and an aria-describedby naming each field's help text and errors;
audience/_field.html gives those elements the ids it points at.
"""

from __future__ import annotations

import json
import math
import re
import uuid
import zoneinfo
from datetime import datetime, time, timedelta

from django import forms
from django.core.exceptions import ValidationError

from mailmarketer.accounts.models import slug_validator
from mailmarketer.lib.text import validate_one_line

from .actions import BULK_ACTIONS, BULK_LIMIT, BULK_NEEDS_LIST
from .models import MailingList, Subscriber, Subscription, Suppression
from .queries import AttributeText, SubscriberFilter

# -- attribute values ------------------------------------------------------------------------

ATTRIBUTE_RULE_HELP = (
    "Values are typed: whole numbers and decimals (42, -3.5) are stored as numbers, true and "
    "false as yes/no values, null as no value, and anything else as text (without surrounding "
    "spaces). Numbers with a leading zero or plus sign (007, +4712345678) stay text. Put a "
    'value in double quotes ("42") to keep it as text.'
)

# JSON's number syntax: no leading zeros (so 007 and postcodes stay text), no NaN or Infinity.
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")


def parse_attribute_value(text: str):
    """The typing rule of the attribute editor (ATTRIBUTE_RULE_HELP). Objects and arrays in
    JSON are kept as such, so a value set through the API survives being edited here."""
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if _NUMBER.fullmatch(text):
        value = json.loads(text)
        # 1e999 reads as infinity, which JSON cannot store: keep what was typed.
        return value if not isinstance(value, float) or math.isfinite(value) else text
    if len(text) >= 2 and (text[0], text[-1]) in (('"', '"'), ("{", "}"), ("[", "]")):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def format_attribute_value(value) -> str:
    """What the editor shows for a stored value: typing it back gives the same value."""
    if isinstance(value, str):
        return value if parse_attribute_value(value) == value else json.dumps(value)
    return json.dumps(value, ensure_ascii=False)


# -- helpers ---------------------------------------------------------------------------------


class Form(forms.Form):
    """Labels without the trailing colon; audience/_field.html lays the field out."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class DateInput(forms.DateInput):
    input_type = "date"


def list_choices(lists, empty: str | None = None) -> list[tuple[str, str]]:
    choices = [("", empty)] if empty is not None else []
    return choices + [(str(ml.pk), ml.name) for ml in lists]


def _pick_list(lists, value: str):
    for ml in lists:
        if str(ml.pk) == value:
            return ml
    return None


# -- lists -----------------------------------------------------------------------------------


class ListForm(Form):
    name = forms.CharField(label="Name", max_length=150, validators=[validate_one_line])
    slug = forms.CharField(
        label="Short name (slug)",
        max_length=50,
        validators=[slug_validator],
        help_text="Lower-case letters, digits and hyphens; used in forms, the API and imports.",
    )
    description = forms.CharField(
        label="Description",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Shown to subscribers in the preference centre when the list is public.",
    )
    visibility = forms.ChoiceField(label="Visibility", choices=MailingList.Visibility.choices)
    optin = forms.ChoiceField(
        label="Opt-in",
        choices=MailingList.OptIn.choices,
        help_text="Double opt-in mails only members who confirmed by clicking a link.",
    )
    tags = forms.CharField(
        label="Tags",
        required=False,
        max_length=500,
        help_text="Separated by commas, e.g. “product, monthly”.",
    )

    def clean_tags(self) -> list[str]:
        tags: list[str] = []
        for raw in self.cleaned_data["tags"].split(","):
            tag = raw.strip()
            if not tag:
                continue
            if len(tag) > 50:
                raise ValidationError(f"The tag “{tag[:20]}…” is longer than 50 characters.")
            if tag not in tags:
                tags.append(tag)
        return tags

    @staticmethod
    def initial_for(mailing_list: MailingList) -> dict:
        return {
            "name": mailing_list.name,
            "slug": mailing_list.slug,
            "description": mailing_list.description,
            "visibility": mailing_list.visibility,
            "optin": mailing_list.optin,
            "tags": ", ".join(mailing_list.tags or []),
        }


# -- finding subscribers ---------------------------------------------------------------------

NO_SEARCH_HELP = "Searching by address or name needs the permission to see personal data."
NO_ATTRIBUTE_FILTER_HELP = (
    "Filtering on an attribute's value needs the permission to see personal data."
)
# The filters that compare a person's own data: a role that sees masked rows may not use them,
# since a filter on real values confirms a guess (an address one character at a time).
PERSONAL_FILTERS = ("q", "attr_name", "attr_op", "attr_value")

ATTRIBUTE_OPS = [
    ("eq", "equals"),
    ("contains", "contains"),
    ("gt", "greater than"),
    ("gte", "at least"),
    ("lt", "less than"),
    ("lte", "at most"),
]


class SubscriberFilterForm(Form):
    """The filters of the subscribers page (GET). Dates are days in the workspace's time zone,
    both inclusive."""

    q = forms.CharField(
        label="Search",
        required=False,
        max_length=254,
        help_text="Part of an email address or name.",
        widget=forms.TextInput(attrs={"type": "search"}),
    )
    list = forms.ChoiceField(label="List", required=False)
    subscription_status = forms.ChoiceField(
        label="Status on that list",
        required=False,
        choices=[("", "Any"), *Subscription.Status.choices],
    )
    status = forms.ChoiceField(
        label="Subscriber status", required=False, choices=[("", "Any"), *Subscriber.Status.choices]
    )
    attr_name = forms.CharField(label="Attribute", required=False, max_length=100)
    attr_op = forms.ChoiceField(label="Comparison", required=False, choices=ATTRIBUTE_OPS)
    attr_value = forms.CharField(
        label="Value",
        required=False,
        max_length=200,
        help_text="A number compares as a number (30 finds 30 and “30”); anything else as text.",
    )
    created_from = forms.DateField(label="Added from", required=False, widget=DateInput)
    created_to = forms.DateField(label="Added until", required=False, widget=DateInput)
    segment = forms.ChoiceField(label="Segment", required=False)

    def __init__(self, *args, lists, tz: str, can_search: bool, segments=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.lists = list(lists)
        self.fields["segment"].choices = [("", "Anyone"), *((str(s.pk), s.name) for s in segments)]
        self.tz = zoneinfo.ZoneInfo(tz)
        self.can_search = can_search
        self.fields["list"].choices = list_choices(self.lists, "Any list")
        if not can_search:
            # Searching by address or name would let a role that sees masked addresses find
            # out, one character at a time, what they are; an attribute's value likewise.
            for name in PERSONAL_FILTERS:
                self.fields[name].disabled = True
            self.fields["q"].help_text = NO_SEARCH_HELP
            self.fields["attr_value"].help_text = NO_ATTRIBUTE_FILTER_HELP

    def refused_filters(self) -> list[str]:
        """The labels of the personal-data filters given by someone who may not use them
        (the page says so rather than quietly leaving them out)."""
        if self.can_search:
            return []
        return [
            str(self.fields[name].label)
            for name in PERSONAL_FILTERS
            if name != "attr_op" and (self.data.get(name) or "").strip()
        ]

    def clean(self):
        data = super().clean()
        if data.get("subscription_status") and not data.get("list"):
            self.add_error("subscription_status", "Choose the list this status is about.")
        if (data.get("attr_value") or "") != "" and not (data.get("attr_name") or "").strip():
            self.add_error("attr_name", "Name the attribute to compare the value with.")
        if (data.get("attr_name") or "").strip() and (data.get("attr_value") or "") == "":
            self.add_error("attr_value", "Give the value to compare the attribute with.")
        start, end = data.get("created_from"), data.get("created_to")
        if start and end and start > end:
            self.add_error("created_to", "The “Added until” date is before the “Added from” date.")
        return data

    def clean_attr_name(self) -> str:
        name = (self.cleaned_data.get("attr_name") or "").strip()
        if name.isdigit():
            # Django reads a key of digits as a position in a JSON array, on both databases.
            raise ValidationError("Attribute names made of digits only cannot be filtered on.")
        return name

    def to_filter(self) -> tuple[SubscriberFilter, list[AttributeText]]:
        """The filter and the attribute rule, for queries.search_subscribers_by_text (the
        API's search too, so both read a value the same way)."""
        data = self.cleaned_data
        rules = []
        if data.get("attr_name") and self.can_search:
            op = data.get("attr_op") or "eq"
            rules.append(AttributeText(data["attr_name"], op, data["attr_value"].strip()))
        return (
            SubscriberFilter(
                q=(data.get("q") or "").strip() if self.can_search else "",
                list_id=int(data["list"]) if data.get("list") else None,
                subscription_status=data.get("subscription_status") or "",
                status=data.get("status") or "",
                created_from=self._day(data.get("created_from")),
                created_to=self._day(data.get("created_to"), next_day=True),
                segment_id=int(data["segment"]) if data.get("segment") else None,
            ),
            rules,
        )

    def _day(self, day, next_day: bool = False):
        if day is None:
            return None
        if next_day:
            day = day + timedelta(days=1)
        return datetime.combine(day, time.min, tzinfo=self.tz)

    def params(self) -> dict:
        """The filters as given, to carry into the next-page link."""
        return {
            name: self.data[name]
            for name in self.fields
            if self.data.get(name, "") != "" and not self.fields[name].disabled
        }


class AddSubscriberForm(Form):
    email = forms.CharField(label="Email address", max_length=254)
    first_name = forms.CharField(
        label="First name", required=False, max_length=100, validators=[validate_one_line]
    )
    last_name = forms.CharField(
        label="Last name", required=False, max_length=100, validators=[validate_one_line]
    )
    name = forms.CharField(
        label="Name shown",
        required=False,
        max_length=200,
        validators=[validate_one_line],
        help_text="Leave empty to show the first and last name.",
    )
    lists = forms.MultipleChoiceField(
        label="Subscribe to",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Double opt-in lists leave the person unconfirmed until they confirm.",
    )

    def __init__(self, *args, lists, **kwargs):
        kwargs.setdefault("prefix", "add")
        super().__init__(*args, **kwargs)
        self.all_lists = list(lists)
        self.fields["lists"].choices = list_choices(self.all_lists)

    def chosen_lists(self) -> list[MailingList]:
        chosen = set(self.cleaned_data.get("lists") or [])
        return [ml for ml in self.all_lists if str(ml.pk) in chosen]


class UUIDListField(forms.Field):
    """The selected subscribers, by uuid, as repeated hidden or checkbox inputs."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value) -> list[uuid.UUID]:
        if not value:
            return []
        if isinstance(value, str):
            value = [value]
        found: list[uuid.UUID] = []
        for raw in value:
            try:
                parsed = uuid.UUID(str(raw))
            except ValueError:
                raise ValidationError(
                    f"“{str(raw)[:40]}” is not a subscriber id (a uuid)."
                ) from None
            if parsed not in found:
                found.append(parsed)
        return found


class BulkForm(Form):
    ids = UUIDListField(
        required=True,
        error_messages={"required": "Select at least one subscriber (tick the boxes)."},
    )
    action = forms.ChoiceField(label="Action", choices=list(BULK_ACTIONS.items()))
    list = forms.ChoiceField(
        label="List",
        required=False,
        help_text="For adding to or unsubscribing from a list.",
    )

    def __init__(self, *args, lists, **kwargs):
        # Its own element ids: the filter form on the same page has a "list" field too.
        kwargs.setdefault("auto_id", "bulk_%s")
        super().__init__(*args, **kwargs)
        self.all_lists = list(lists)
        self.fields["list"].choices = list_choices(self.all_lists, "Choose a list")

    def clean_ids(self):
        ids = self.cleaned_data["ids"]
        if len(ids) > BULK_LIMIT:
            raise ValidationError(f"Select at most {BULK_LIMIT} subscribers at a time.")
        return ids

    def clean(self):
        data = super().clean()
        if data.get("action") in BULK_NEEDS_LIST and not data.get("list"):
            self.add_error("list", "Choose the list for this action.")
        return data

    def chosen_list(self):
        value = self.cleaned_data.get("list") or ""
        return _pick_list(self.all_lists, value) if value else None


# -- one subscriber --------------------------------------------------------------------------


class ProfileForm(Form):
    email = forms.CharField(label="Email address", max_length=254)
    first_name = forms.CharField(
        label="First name", required=False, max_length=100, validators=[validate_one_line]
    )
    last_name = forms.CharField(
        label="Last name", required=False, max_length=100, validators=[validate_one_line]
    )
    name = forms.CharField(
        label="Name shown",
        required=False,
        max_length=200,
        validators=[validate_one_line],
        help_text="Leave empty to show the first and last name; it follows them while it "
        "is made from them.",
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("prefix", "profile")
        super().__init__(*args, **kwargs)


class AttributeRowForm(forms.Form):
    key = forms.CharField(
        label="Name", required=False, max_length=100, validators=[validate_one_line]
    )
    value = forms.CharField(label="Value", required=False, max_length=2000)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class BaseAttributeFormSet(forms.BaseFormSet):
    def clean(self):
        if any(self.errors):
            return
        seen: set[str] = set()
        for form in self.forms:
            if self.can_delete and self._should_delete_form(form):
                continue
            key = (form.cleaned_data.get("key") or "").strip()
            value = form.cleaned_data.get("value") or ""
            if not key:
                if value.strip():
                    form.add_error("key", "Give this value a name, or clear the value.")
                continue
            if key in seen:
                form.add_error("key", f"The attribute “{key}” appears twice; keep one.")
            seen.add(key)

    def attributes(self) -> dict:
        """The attributes to store, typed by parse_attribute_value. Removed rows and rows
        without a name are left out."""
        result = {}
        for form in self.forms:
            if self.can_delete and self._should_delete_form(form):
                continue
            key = (form.cleaned_data.get("key") or "").strip()
            if key:
                result[key] = parse_attribute_value(form.cleaned_data.get("value") or "")
        return result


AttributeFormSet = forms.formset_factory(
    AttributeRowForm, formset=BaseAttributeFormSet, extra=3, can_delete=True, max_num=200
)


def attribute_formset(subscriber: Subscriber, data=None):
    initial = [
        {"key": key, "value": format_attribute_value(value)}
        for key, value in sorted((subscriber.attributes or {}).items())
    ]
    return AttributeFormSet(data, initial=initial, prefix="attr")


# -- export ----------------------------------------------------------------------------------

EXPORT_MEMBER_CHOICES = [
    ("active", "Subscribed (confirmed and unconfirmed)"),
    ("confirmed", "Confirmed only"),
    ("all", "Everyone on the list, including those who unsubscribed"),
]


class ExportForm(Form):
    source = forms.ChoiceField(label="List or segment")
    members = forms.ChoiceField(
        label="Members of a list",
        choices=EXPORT_MEMBER_CHOICES,
        initial="active",
        help_text="For a list only: a segment's own rules say who is in it.",
    )
    format = forms.ChoiceField(
        label="Format",
        choices=[("csv", "CSV (spreadsheets)"), ("json", "JSON (programs)")],
        initial="csv",
        widget=forms.RadioSelect,
    )

    def __init__(self, *args, lists, segments=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.sources = {f"list:{ml.pk}": ml for ml in lists}
        self.sources.update({f"segment:{seg.pk}": seg for seg in segments})
        choices: list = [("", "Choose a list or segment")]
        for label, prefix in (("Lists", "list:"), ("Segments", "segment:")):
            group = [(key, str(obj)) for key, obj in self.sources.items() if key.startswith(prefix)]
            if group:
                choices.append((label, group))
        self.fields["source"].choices = choices

    def chosen(self):
        """The MailingList or Segment to export."""
        return self.sources[self.cleaned_data["source"]]


# -- suppression -----------------------------------------------------------------------------


class SuppressionAddForm(Form):
    email = forms.CharField(
        label="Email address",
        max_length=254,
        help_text="Only a hash of the address is kept; the address itself is not stored.",
    )
    reason = forms.ChoiceField(
        label="Reason",
        # "erased" is what erasing a person records; staff cannot claim it by hand.
        choices=[(v, label) for v, label in Suppression.Reason.choices if v != "erased"],
        initial=Suppression.Reason.MANUAL,
    )
    note = forms.CharField(
        label="Note",
        required=False,
        max_length=200,
        help_text="Why, for your colleagues, e.g. a ticket number. Avoid personal data here.",
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("prefix", "add")
        super().__init__(*args, **kwargs)


class SuppressionCheckForm(Form):
    email = forms.CharField(label="Email address to check", max_length=254)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("prefix", "check")
        super().__init__(*args, **kwargs)
