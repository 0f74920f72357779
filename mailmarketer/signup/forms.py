"""The staff's form builder, as a Django form. Built-in fields are a choice each (not asked,
optional, required); custom fields are one line each, so a marketer can write and read them
without a JavaScript editor:

    key | type | label | required or optional | help | option; option; ...

`cleaned_data` comes out in the shape actions.do_create_form / do_update_form take.
"""

from __future__ import annotations

from django import forms

from mailmarketer.audience.models import MailingList

from .actions import FormError, clean_origin
from .fields import BUILTIN, FieldsError, clean_fields
from .models import Event, Form
from .texts import text
from .webinars import event_of

OFF, OPTIONAL, REQUIRED = "off", "optional", "required"
BUILTIN_CHOICES = [(OFF, "Not asked"), (OPTIONAL, "Optional"), (REQUIRED, "Required")]


def _custom_lines(specs: list[dict]) -> str:
    lines = []
    for spec in specs:
        if spec["type"] == "builtin":
            continue
        parts = [
            spec["key"],
            spec["type"],
            spec["label"],
            REQUIRED if spec["required"] else OPTIONAL,
            spec["help"],
            "; ".join(spec["choices"]),
        ]
        lines.append(" | ".join(parts).rstrip(" |"))
    return "\n".join(lines)


def _parse_custom(source: str) -> list[dict]:
    specs = []
    for number, line in enumerate(source.splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 2 or len(parts) > 6:
            raise forms.ValidationError(
                f"line {number}: write key | type | label | required or optional | help | "
                "options (the first two are needed)"
            )
        parts += [""] * (6 - len(parts))
        key, kind, label, need, help_text, options = parts
        if need not in ("", OPTIONAL, REQUIRED):
            raise forms.ValidationError(f"line {number}: write 'required' or 'optional'")
        specs.append(
            {
                "key": key,
                "type": kind,
                "label": label,
                "required": need == REQUIRED,
                "help": help_text,
                "choices": [o.strip() for o in options.split(";") if o.strip()],
            }
        )
    return specs


class FormBuilder(forms.Form):
    name = forms.CharField(
        label="Form name", max_length=150, help_text="For you; people see the title."
    )
    slug = forms.CharField(
        label="Short name",
        max_length=50,
        help_text="Part of the form's address, /f/<workspace>/<short name>: lower-case letters, "
        "digits and hyphens.",
    )
    kind = forms.ChoiceField(
        choices=Form.Kind.choices,
        initial=Form.Kind.NEWSLETTER,
        help_text="Newsletter, webinar (registers people for an event), resource (gives a file "
        "or link: choose it on the form's page) or evaluation request (makes a lead: set its "
        "products on the form's page).",
    )
    event = forms.ModelChoiceField(
        queryset=Event.objects.none(),
        required=False,
        label="Webinar",
        help_text="The event a webinar form registers people for.",
    )
    title = forms.CharField(max_length=200)
    intro = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    language = forms.ChoiceField(choices=Form.Language.choices, initial=Form.Language.ENGLISH)
    custom_fields = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        required=False,
        help_text="One per line: key | type (text, number, date, choice, checkbox) | label | "
        "required or optional | help | options separated by ; (choice only). Each is kept "
        "as the subscriber attribute named by its key.",
    )
    list_mode = forms.ChoiceField(
        label="Lists offered", choices=Form.ListMode.choices, initial=Form.ListMode.FIXED
    )
    lists = forms.ModelMultipleChoiceField(
        queryset=MailingList.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        # Newsletter forms need one (the action says so); webinar, resource and evaluation
        # forms may have none (then resource and evaluation forms ask for no consent).
        required=False,
    )
    notice_text = forms.CharField(
        label="Consent notice",
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Shown next to the consent box, word for word; each consent record keeps "
        "the version the person saw. Changing it makes a new version.",
    )
    tracking_notice_text = forms.CharField(
        label="Activity-tracking notice (optional)",
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="When set, the form shows a second, optional box with these words; ticking "
        "it records consent to activity tracking (its own consent record). Empty: no box.",
    )
    success_message = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text="Shown after sending. Leave empty for the built-in text, which says the "
        "same whether the address was new or known.",
    )
    redirect_url = forms.URLField(
        label="Redirect to",
        required=False,
        assume_scheme="https",
        max_length=500,
        help_text="Instead of the message: go to this page, on one of the allowed origins.",
    )
    allowed_origins = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text="One per line, like https://www.example.com: the sites that may embed the "
        "form or post to its JSON address.",
    )

    def __init__(self, *args, workspace, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["lists"].queryset = MailingList.objects.filter(workspace=workspace).order_by(
            "name"
        )
        self.fields["event"].queryset = Event.objects.filter(
            workspace=workspace, status=Event.Status.SCHEDULED
        ).order_by("-starts_at")
        for key in BUILTIN:
            self.fields[f"builtin_{key}"] = forms.ChoiceField(
                label=text("en", key), choices=BUILTIN_CHOICES, initial=OFF
            )

    def builtin_fields(self):
        return [self[f"builtin_{key}"] for key in BUILTIN]

    @classmethod
    def initial_for(cls, form: Form) -> dict:
        initial = {
            key: getattr(form, key)
            for key in ("name", "slug", "kind", "title", "intro", "language", "list_mode")
        }
        initial.update(
            custom_fields=_custom_lines(form.fields),
            lists=list(form.lists.all()),
            notice_text=form.notice.text,
            tracking_notice_text=form.tracking_notice.text if form.tracking_notice_id else "",
            success_message=form.success_message,
            redirect_url=form.redirect_url,
            allowed_origins="\n".join(form.allowed_origins),
            event=event_of(form),
        )
        for spec in form.fields:
            if spec["type"] == "builtin":
                initial[f"builtin_{spec['key']}"] = REQUIRED if spec["required"] else OPTIONAL
        return initial

    def clean_kind(self):
        kind = self.cleaned_data["kind"]
        if kind not in Form.Kind.values:
            raise forms.ValidationError(
                f"{kind!r} is not a kind of form: newsletter, webinar, resource or evaluation."
            )
        return kind

    def clean_custom_fields(self):
        return _parse_custom(self.cleaned_data.get("custom_fields") or "")

    def clean_allowed_origins(self):
        origins = []
        for line in (self.cleaned_data.get("allowed_origins") or "").splitlines():
            if line.strip():
                try:
                    origins.append(clean_origin(line))
                except FormError as exc:
                    raise forms.ValidationError(str(exc)) from None
        return origins

    def clean(self):
        data = super().clean()
        if "custom_fields" not in data:
            return data
        builtins = [
            {"key": key, "type": "builtin", "required": data.get(f"builtin_{key}") == REQUIRED}
            for key in BUILTIN
            if data.get(f"builtin_{key}", OFF) != OFF
        ]
        try:
            data["fields"] = clean_fields(builtins + data["custom_fields"])
        except FieldsError as exc:
            self.add_error("custom_fields", str(exc))
        return data

    def action_arguments(self) -> tuple[dict, list, str]:
        """(the form's settings, its lists, the notice text) for the actions."""
        data = self.cleaned_data
        settings = {
            key: data[key]
            for key in (
                "name",
                "slug",
                "kind",
                "title",
                "intro",
                "language",
                "list_mode",
                "success_message",
                "redirect_url",
                "allowed_origins",
                "fields",
                "tracking_notice_text",
            )
        }
        settings["event"] = data.get("event")  # for webinar forms; the views pass it on
        return settings, list(data["lists"]), data["notice_text"]


class WelcomeForm(forms.Form):
    subject = forms.CharField(max_length=200, required=False)
    body = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8}),
        required=False,
        help_text="Markdown, with the personalisation of campaigns, e.g. "
        "{{ subscriber.first_name }}. Sent once a person confirms joining the list through a "
        "form. Leave subject and body empty to send none.",
    )
