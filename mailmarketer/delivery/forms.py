"""Forms of the sending pages: the relay settings, and a campaign's schedule, cancellation,
list filter and ledger filter. They only check the shape of the input; the values are
checked (and normalised) by actions.py, whose ValidationErrors the views put on these fields.

A stored password is never put back into a form: the password field always renders empty (an
empty field means "keep the stored one"), and a separate checkbox removes it.
"""

from __future__ import annotations

from django import forms

from mailmarketer.campaigns.models import Campaign

from .actions import MAX_CAP, MAX_CONNECTIONS, MAX_PASSWORD, MAX_PER_SECOND, MAX_WEIGHT
from .models import Delivery, SmtpServer

TLS_NONE_WARNING = (
    "With “None” the password and every message travel in clear: use it only for a relay on "
    "this machine or on a private network you trust."
)
VERIFY_OFF_WARNING = (
    "Without verification anyone on the network path can pose as the relay and read the "
    "password and the mail. Turn it off only for a relay with a self-signed certificate on a "
    "network you trust."
)


class Form(forms.Form):
    """Labels without the trailing colon (accounts/settings_field.html lays the field out)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class SmtpServerForm(Form):
    name = forms.CharField(
        label="Name", max_length=100, help_text="For you, e.g. “Office relay” or “Postmark”."
    )
    host = forms.CharField(
        label="Host",
        max_length=255,
        help_text="Host name or IP address of the relay, e.g. smtp.example.com.",
    )
    port = forms.IntegerField(
        label="Port",
        min_value=1,
        max_value=65535,
        initial=587,
        help_text="Usually 587 with STARTTLS, 465 with implicit TLS, 25 for a local relay.",
    )
    tls_mode = forms.ChoiceField(
        label="Encryption (TLS)",
        choices=SmtpServer.TlsMode.choices,
        initial=SmtpServer.TlsMode.STARTTLS,
        help_text=TLS_NONE_WARNING,
    )
    verify_certificate = forms.BooleanField(
        label="Verify the relay's TLS certificate",
        required=False,
        initial=True,
        help_text=VERIFY_OFF_WARNING,
    )
    username = forms.CharField(
        label="Username",
        max_length=255,
        required=False,
        # Not the browser's saved login of this site: it would fill in the staff member's own.
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
        help_text="Leave empty for a relay that does not ask for a login.",
    )
    password = forms.CharField(
        label="Password",
        max_length=MAX_PASSWORD,
        required=False,
        strip=False,  # spaces at either end may be part of a password
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted; never shown again.",
    )
    clear_password = forms.BooleanField(
        label="Remove the stored password",
        required=False,
    )
    max_connections = forms.IntegerField(
        label="Connections at once",
        min_value=1,
        max_value=MAX_CONNECTIONS,
        initial=4,
        help_text="How many connections each worker may open to this relay.",
    )
    messages_per_second = forms.IntegerField(
        label="Messages per second",
        min_value=0,
        max_value=MAX_PER_SECOND,
        initial=0,
        help_text="Across all workers together; 0 means no limit.",
    )
    hourly_cap = forms.IntegerField(
        label="Messages per hour",
        min_value=0,
        max_value=MAX_CAP,
        initial=0,
        help_text="0 means no cap. Past the cap, sending waits for the next hour.",
    )
    daily_cap = forms.IntegerField(
        label="Messages per day",
        min_value=0,
        max_value=MAX_CAP,
        initial=0,
        help_text="0 means no cap. Past the cap, sending waits for the next day (UTC).",
    )
    weight = forms.IntegerField(
        label="Weight",
        min_value=1,
        max_value=MAX_WEIGHT,
        initial=1,
        help_text="With several servers, each batch goes to one of them picked at random in "
        "proportion to its weight: 3 and 1 share the mail 75 % and 25 %.",
    )
    enabled = forms.BooleanField(
        label="Enabled",
        required=False,
        initial=True,
        help_text="A disabled server is kept but not used.",
    )

    def __init__(self, *args, password_set: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.password_set = password_set
        if password_set:
            self.fields[
                "password"
            ].help_text = "A password is stored. Leave this empty to keep it, or type a new one."
        else:
            del self.fields["clear_password"]

    def clean(self):
        data = super().clean()
        if data.get("clear_password") and data.get("password"):
            self.add_error(
                "password", "Either type a new password or remove the stored one, not both."
            )
        return data

    @classmethod
    def initial_for(cls, server: SmtpServer) -> dict:
        return {name: getattr(server, name) for name in cls.base_fields if "password" not in name}

    def action_values(self) -> dict:
        """The cleaned data as do_create/do_update_smtp_server take it: no "password" key means
        keep the stored one, "" removes it."""
        data = dict(self.cleaned_data)
        password = data.pop("password", "")
        clear = data.pop("clear_password", False)
        if clear:
            data["password"] = ""
        elif password:
            data["password"] = password
        return data


class DkimKeyForm(Form):
    domain = forms.CharField(
        label="Domain",
        max_length=255,
        help_text="The domain of the From address of your mail, e.g. example.com. Campaigns are "
        "signed with the key of their From address's domain.",
    )
    selector = forms.CharField(
        label="Selector",
        max_length=63,
        help_text="Names this key in DNS; letters, digits and hyphens.",
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("prefix", "dkim")
        super().__init__(*args, **kwargs)


class DkimRotateForm(Form):
    selector = forms.CharField(
        label="New selector",
        max_length=63,
        help_text="Must differ from the current one, so that both records can be in DNS at once.",
    )


# -- campaigns ---------------------------------------------------------------------------------


class ScheduleForm(Form):
    when = forms.CharField(
        label="Start at",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def __init__(self, *args, timezone: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["when"].help_text = f"In the workspace's time zone, {timezone}."


class CancelForm(Form):
    reason = forms.CharField(
        label="Reason (optional)",
        max_length=500,
        required=False,
        help_text="Shown on the campaign page and kept in the audit log.",
    )


# -- the ledger ------------------------------------------------------------------------------


class LedgerFilterForm(Form):
    status = forms.ChoiceField(
        label="Status",
        required=False,
        choices=[("", "All"), *Delivery.Status.choices],
    )
    after = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)


class CampaignFilterForm(Form):
    status = forms.ChoiceField(
        label="Status", required=False, choices=[("", "All"), *Campaign.Status.choices]
    )
    kind = forms.ChoiceField(
        label="Kind",
        required=False,
        choices=[
            ("", "Campaigns"),
            (Campaign.Kind.TRANSACTIONAL, "Transactional messages (API)"),
        ],
    )
