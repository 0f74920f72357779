"""The site form: the shape of the input only; actions_web checks the values."""

from __future__ import annotations

from django import forms

from .models_web import IpMode


class SiteForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, label="Name")
    domain = forms.CharField(max_length=253, label="Domain", help_text="www.example.com")
    origins = forms.CharField(
        max_length=2000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Allowed origins",
        help_text="One a line, such as https://www.example.com; empty: https:// the domain and "
        "its www. The snippet's hits from any other origin are not stored.",
    )
    ip_mode = forms.ChoiceField(
        choices=IpMode.choices, initial=IpMode.TRUNCATE, label="IP addresses"
    )
    ip_days = forms.IntegerField(
        min_value=1, max_value=365, initial=7, label="Days a whole IP address is kept"
    )
    retention_days = forms.IntegerField(
        min_value=1,
        max_value=3650,
        initial=395,
        label="Days raw hits are kept",
        help_text="Reports keep their counts after that.",
    )
