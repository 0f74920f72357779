"""Forms of the campaign pages. They only check the shape of the input and turn it into what
the actions take; the actions validate the values (addresses, headers, templates, attachments)
and their errors are put back on the field they name (`ActionError.field`), so a template error
reads "body, line 3: unknown filter 'shout'" under the body.

Django renders aria-invalid and an aria-describedby naming each field's help text and errors;
audience/_field.html (shared by the staff pages) gives those elements the ids it points at.
"""

from __future__ import annotations

from django import forms

from mailmarketer.accounts.models import TrackingMode

from .actions import (
    ATTACHMENT_MAX_BYTES,
    ATTACHMENT_TYPES,
    ATTACHMENTS_MAX_TOTAL,
    MAX_ATTACHMENTS,
    MAX_BODY,
    MAX_HEADERS,
    MAX_TEST_ADDRESSES,
)
from .images import IMAGE_MAX_BYTES
from .models import Campaign


class Form(forms.Form):
    """Labels without the trailing colon."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


def _code(attrs: dict | None = None) -> forms.Textarea:
    return forms.Textarea(
        attrs={"class": "code", "spellcheck": "false", "autocapitalize": "off", **(attrs or {})}
    )


# -- campaigns -------------------------------------------------------------------------------


class CampaignForm(Form):
    name = forms.CharField(
        label="Name", max_length=200, help_text="For you and your team; subscribers never see it."
    )
    subject = forms.CharField(
        label="Subject",
        max_length=500,
        help_text="A template too: {{ subscriber.first_name }} works.",
    )
    from_name = forms.CharField(label="From name", max_length=100, required=False)
    from_email = forms.CharField(label="From address", max_length=254, required=False)
    reply_to = forms.CharField(
        label="Reply-to address",
        max_length=254,
        required=False,
        help_text="Where replies go, when not to the from address.",
    )
    body_format = forms.ChoiceField(label="Format", choices=Campaign.Format.choices)
    body = forms.CharField(
        label="Body",
        required=False,
        widget=_code({"rows": 22}),
        help_text="A Jinja2 template in the format chosen above: {{ subscriber.first_name }}, "
        "{{ subscriber.attributes.city }}, {% if ... %}. Checked when you save, with the line "
        "of any error.",
    )
    text_body = forms.CharField(
        label="Plain-text version (optional)",
        required=False,
        widget=_code({"rows": 8}),
        help_text="Left empty, it is made from the HTML.",
    )
    layout = forms.ChoiceField(label="Layout", required=False)
    lists = forms.MultipleChoiceField(
        label="Send to these lists",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Each person is mailed once, however many of these lists they are on.",
    )
    exclude_lists = forms.MultipleChoiceField(
        label="But not to members of these lists",
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    segment = forms.ChoiceField(
        label="Only those in this segment",
        required=False,
        help_text="Optional: narrows the lists' members to the people the segment matches when "
        "sending starts.",
    )
    exclude_segments = forms.MultipleChoiceField(
        label="And nobody in these segments",
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    archive = forms.BooleanField(label="Show on the public archive page", required=False)
    tracking_mode = forms.ChoiceField(
        label="Email tracking",
        required=False,
        choices=[("", "As the workspace settings say"), *TrackingMode.choices],
        help_text="Opens and clicks: linked to the person, counted anonymously, or not tracked.",
    )

    def __init__(self, *args, workspace, lists, layouts, segments=(), default_layout=None, **kw):
        super().__init__(*args, **kw)
        list_choices = [(str(m.pk), m.name) for m in lists]
        self.fields["lists"].choices = list_choices
        self.fields["exclude_lists"].choices = list_choices
        segment_choices = [(str(s.pk), s.name) for s in segments]
        self.fields["segment"].choices = [("", "No segment: every member of the lists")]
        self.fields["segment"].choices += segment_choices
        self.fields["exclude_segments"].choices = segment_choices
        default = (
            f"Workspace default ({default_layout.name})"
            if default_layout is not None
            else "Built-in default layout"
        )
        self.fields["layout"].choices = [("", default)] + [
            (str(layout.pk), layout.name) for layout in layouts
        ]
        sender_name = workspace.sender_name or workspace.name
        self.fields["from_name"].widget.attrs["placeholder"] = sender_name
        self.fields["from_name"].help_text = f"Left empty: {sender_name}, the workspace's sender."
        if workspace.sender_email:
            self.fields["from_email"].widget.attrs["placeholder"] = workspace.sender_email
            self.fields[
                "from_email"
            ].help_text = f"Left empty: {workspace.sender_email}, the workspace's sender address."
        else:
            self.fields["from_email"].help_text = (
                "The workspace has no sender address: give one here, or set it in the "
                "workspace settings."
            )
        self.fields["from_email"].widget.input_type = "email"
        self.fields["reply_to"].widget.input_type = "email"

    @staticmethod
    def initial_for(campaign: Campaign) -> dict:
        return {
            "name": campaign.name,
            "subject": campaign.subject,
            "from_name": campaign.from_name,
            "from_email": campaign.from_email,
            "reply_to": campaign.reply_to,
            "body_format": campaign.body_format,
            "body": campaign.body,
            "text_body": campaign.text_body,
            "layout": str(campaign.layout_id or ""),
            "lists": [str(pk) for pk in campaign.lists.values_list("pk", flat=True)],
            "exclude_lists": [
                str(pk) for pk in campaign.exclude_lists.values_list("pk", flat=True)
            ],
            "segment": str(campaign.segment_id or ""),
            "exclude_segments": [
                str(pk) for pk in campaign.exclude_segments.values_list("pk", flat=True)
            ],
            "archive": campaign.archive,
            "tracking_mode": campaign.tracking_mode,
        }

    def changes(self) -> dict:
        """The fields as the actions take them (do_create_campaign, do_update_campaign)."""
        data = self.cleaned_data
        return {
            "name": data["name"],
            "subject": data["subject"],
            "from_name": data["from_name"],
            "from_email": data["from_email"],
            "reply_to": data["reply_to"],
            "body_format": data["body_format"],
            "body": data["body"],
            "text_body": data["text_body"],
            "layout": int(data["layout"]) if data["layout"] else None,
            "lists": [int(pk) for pk in data["lists"]],
            "exclude_lists": [int(pk) for pk in data["exclude_lists"]],
            "segment": int(data["segment"]) if data["segment"] else None,
            "exclude_segments": [int(pk) for pk in data["exclude_segments"]],
            "archive": data["archive"],
            "tracking_mode": data["tracking_mode"],
        }


class HeaderForm(Form):
    name = forms.CharField(label="Header name", max_length=76, required=False)
    value = forms.CharField(label="Value", max_length=900, required=False)

    def clean(self):
        data = super().clean()
        name, value = data.get("name", ""), data.get("value", "")
        if value and not name:
            self.add_error("name", "Give the header a name, or clear its value.")
        if name and not value:
            self.add_error("value", f"Give {name} a value, or clear its name.")
        return data


class _HeaderFormSet(forms.BaseFormSet):
    def headers(self) -> list[list[str]]:
        return [
            [form.cleaned_data["name"], form.cleaned_data["value"]]
            for form in self.forms
            if form.cleaned_data.get("name")
        ]


HeaderFormSet = forms.formset_factory(
    HeaderForm,
    formset=_HeaderFormSet,
    extra=2,
    max_num=MAX_HEADERS,
    validate_max=True,
    absolute_max=MAX_HEADERS + 2,
)


def header_formset(data=None, campaign: Campaign | None = None) -> _HeaderFormSet:
    initial = [{"name": n, "value": v} for n, v in (campaign.headers if campaign else [])]
    return HeaderFormSet(data, initial=initial, prefix="headers", form_kwargs={"label_suffix": ""})


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MB"


ATTACHMENT_HELP = (
    f"Up to {_size(ATTACHMENT_MAX_BYTES)} a file, {_size(ATTACHMENTS_MAX_TOTAL)} in all, at "
    f"most {MAX_ATTACHMENTS} files: "
    + ", ".join(sorted({e.lstrip(".").upper() for ends in ATTACHMENT_TYPES.values() for e in ends}))
    + ". Every recipient gets them, so keep them small."
)


class AttachmentForm(Form):
    file = forms.FileField(label="Attach a file", help_text=ATTACHMENT_HELP)

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > ATTACHMENT_MAX_BYTES:
            raise forms.ValidationError(
                f"The file is {upload.size:,} bytes; at most {ATTACHMENT_MAX_BYTES:,} "
                f"({_size(ATTACHMENT_MAX_BYTES)}) are allowed."
            )
        return upload

    def content_type(self) -> str:
        """The type its name says (browsers disagree about .csv and .ics), else what the
        browser sent; the action checks either against the file's content."""
        upload = self.cleaned_data["file"]
        name = (upload.name or "").lower()
        for content_type, endings in ATTACHMENT_TYPES.items():
            if name.endswith(endings):
                return content_type
        return upload.content_type or ""


class TestSendForm(Form):
    to = forms.CharField(
        label="Send a test to",
        max_length=2000,
        help_text=f"Up to {MAX_TEST_ADDRESSES} addresses, separated by commas. Test messages are "
        "marked [Test], go to these addresses only and are not in the delivery ledger.",
    )


class PreviewSearchForm(Form):
    q = forms.CharField(
        label="Preview as",
        max_length=254,
        required=False,
        help_text="Part of a subscriber's email address or name.",
    )


# -- layouts ---------------------------------------------------------------------------------


class LayoutForm(Form):
    name = forms.CharField(label="Name", max_length=150)
    html = forms.CharField(
        label="HTML",
        widget=_code({"rows": 24}),
        help_text="A whole HTML document with exactly one {{ content }}, where each campaign's "
        "content goes. Styles in <style> are inlined when a campaign is sent. Show "
        "{{ postal_address }} and link {{ unsubscribe_url }}, or a footer with both is added.",
    )
    is_default = forms.BooleanField(
        label="Use for campaigns that do not choose a layout", required=False
    )


# -- the editor's live preview -----------------------------------------------------------------


class LivePreviewForm(Form):
    """What the live preview reads of the unsaved campaign form (views_preview.live_preview):
    the content fields under the campaign form's own names, the campaign being edited (empty
    for a new one) and the signed choice of a person to preview as (empty: sample data)."""

    campaign = forms.IntegerField(required=False, min_value=1)
    subject = forms.CharField(max_length=500, required=False)
    body_format = forms.ChoiceField(choices=Campaign.Format.choices)
    body = forms.CharField(max_length=MAX_BODY, required=False, strip=False)
    text_body = forms.CharField(max_length=MAX_BODY, required=False, strip=False)
    layout = forms.CharField(max_length=20, required=False)
    preview_as = forms.CharField(max_length=1000, required=False)

    def problem(self) -> str:
        """The errors as one line for the preview pane."""
        return "; ".join(
            f"{name.replace('_', ' ')}: {' '.join(errors)}" for name, errors in self.errors.items()
        )


class PeopleSearchForm(Form):
    q = forms.CharField(max_length=254, required=False)
    lists = forms.TypedMultipleChoiceField(required=False, coerce=int)

    def __init__(self, *args, lists=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["lists"].choices = [(m.pk, m.name) for m in lists]


class ImageForm(Form):
    image = forms.FileField(
        label="Upload an image",
        help_text="PNG, JPEG, GIF or WebP, up to 5 MB. It is served from this site at an address "
        "that never changes, so messages already sent keep showing it.",
    )

    def clean_image(self):
        upload = self.cleaned_data["image"]
        if upload.size > IMAGE_MAX_BYTES:
            raise forms.ValidationError(
                f"the image is {upload.size:,} bytes; at most {IMAGE_MAX_BYTES:,} (5 MB) are "
                "allowed"
            )
        return upload

    def problem(self) -> str:
        return " ".join(" ".join(errors) for errors in self.errors.values())
