"""Forms of the import pages: the upload (file, mode, lists, consent), and the column mapping.
They check input only; the actions (jobs.py) decide, and their refusals are put on the field
they concern (ERROR_FIELDS)."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

from ..models import Import, MailingList
from .mapping import ROLE_TEXT, SINGLE_ROLES, Attribute, Mapping, default_attribute_name

# Which upload field an ActionError's code belongs to.
ERROR_FIELDS = {
    "unreadable_file": "file",
    "too_large": "file",
    "lists_required": "lists",
    "not_found": "lists",
    "notice_required": "notice_text",
}


class SizeLimitHandler(FileUploadHandler):
    """Stops reading an upload once it passes MM_IMPORT_MAX_MB, before it fills the disk.

    The rest of the request body is read and thrown away (so the browser gets our page, not a
    reset connection) and `request.upload_too_large` tells the view. The CSRF token, which
    comes before the file in the form, has been read by then."""

    def __init__(self, request=None):
        super().__init__(request)
        self.limit = settings.IMPORT_MAX_BYTES
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            self.request.upload_too_large = True
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size):
        return None


class UploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="A .csv file with a first line naming the columns, or one compressed as "
        ".csv.gz or in a .zip. UTF-8 or Latin-1; separated by commas, semicolons or tabs.",
    )
    mode = forms.ChoiceField(
        label="What to do",
        choices=Import.Mode.choices,
        initial=Import.Mode.SUBSCRIBE,
        widget=forms.RadioSelect,
        help_text="Subscribing never resubscribes someone who unsubscribed, and never adds a "
        "suppressed address. Updating never adds anyone: unknown addresses are reported.",
    )
    lists = forms.ModelMultipleChoiceField(
        label="Subscribe to",
        queryset=MailingList.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="For “add and subscribe”: the lists everyone in the file joins.",
    )
    confirmed = forms.BooleanField(
        label="They have confirmed their consent: import them as confirmed",
        required=False,
        help_text="Otherwise they are imported as unconfirmed, and double opt-in lists do not "
        "mail them until they confirm.",
    )
    notice_text = forms.CharField(
        label="Consent notice they agreed to",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="The exact words shown when they gave their consent. Needed to import as "
        "confirmed; kept with each of their consent records.",
    )
    attribute_mode = forms.ChoiceField(
        label="Attributes (when updating)",
        choices=Import.AttributeMode.choices,
        initial=Import.AttributeMode.MERGE,
        widget=forms.RadioSelect,
    )

    def __init__(self, *args, workspace, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["lists"].queryset = MailingList.objects.filter(workspace=workspace).order_by(
            "name"
        )
        from .jobs import size_text

        self.fields["file"].help_text += f" Up to {size_text(settings.IMPORT_MAX_BYTES)}."


ROLE_CHOICES = [
    ("ignore", "Ignore"),
    ("email", "Email address"),
    ("name", "Name (as shown)"),
    ("first_name", "First name"),
    ("last_name", "Last name"),
    ("attributes_json", "Attributes (JSON objects)"),
    ("attribute:text", "Attribute (text)"),
    ("attribute:number", "Attribute (number)"),
]


class MappingForm(forms.Form):
    """One role select and one attribute-name box per column of the file."""

    def __init__(self, *args, header: list[str], mapping: Mapping, **kwargs):
        super().__init__(*args, **kwargs)
        self.header = header
        for i, cell in enumerate(header):
            title = f"Column {i + 1}" + (f" “{cell}”" if cell else "")
            self.fields[f"role_{i}"] = forms.ChoiceField(
                label=f"{title}: use as", choices=ROLE_CHOICES, initial=mapping.role_of(i)
            )
            self.fields[f"attr_{i}"] = forms.CharField(
                label=f"{title}: attribute name",
                required=False,
                max_length=100,
                initial=mapping.attribute_name(i) or default_attribute_name(header, i),
            )

    def columns(self):
        """(index, header cell, role field, name field) for the template's table."""
        return [
            (i, cell, self[f"role_{i}"], self[f"attr_{i}"]) for i, cell in enumerate(self.header)
        ]

    def mapping(self) -> Mapping:
        """The mapping chosen (not yet validated against the header: Mapping.validated)."""
        singles: dict[str, int] = {}
        attributes = []
        for i in range(len(self.header)):
            role = self.cleaned_data[f"role_{i}"]
            if role in SINGLE_ROLES:
                if role in singles:
                    what = "email address" if role == "email" else ROLE_TEXT[role]
                    raise forms.ValidationError(f"only one column can hold the {what}")
                singles[role] = i
            elif role.startswith("attribute:"):
                attribute_name = self.cleaned_data[f"attr_{i}"].strip()
                attributes.append(Attribute(i, attribute_name, role.split(":", 1)[1]))
        return Mapping(email=singles.pop("email", None), attributes=tuple(attributes), **singles)
