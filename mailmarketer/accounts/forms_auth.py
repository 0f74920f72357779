"""Forms of the sign-in pages: login, two-factor codes, passwords, first-run setup, invitations.

The forms only validate input. Checking a password against the database happens in the views,
after the login throttle has been consulted, and every write goes through actions.py.
"""

from __future__ import annotations

from django import forms
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError

from .models import (
    RECOVERY_LENGTH,
    RESERVED_WORKSPACE_SLUGS,
    User,
    Workspace,
    normalise_recovery_code,
    slug_validator,
)

MISMATCH_MESSAGE = "The two passwords differ: type the same new password in both fields."


class EmailField(forms.EmailField):
    """An address compared the way staff logins are: trimmed and lower-cased."""

    def clean(self, value):
        return User.objects.normalize_email(super().clean(value))


class LoginForm(forms.Form):
    email = EmailField(
        label="Email address",
        max_length=254,
        widget=forms.EmailInput(attrs=dict(autocomplete="username", autofocus=True)),
    )
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs=dict(autocomplete="current-password")),
    )


class TotpCodeForm(forms.Form):
    code = forms.CharField(
        label="6-digit code",
        max_length=12,
        help_text="The code your authenticator app shows for Mail Marketer right now.",
        widget=forms.TextInput(
            attrs=dict(
                autocomplete="one-time-code",
                inputmode="numeric",
                autofocus=True,
                spellcheck="false",
            )
        ),
    )

    def __init__(self, *args, autofocus: bool = True, recovery: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        # Where a code proves who is signing in (not where an app is being set up), one of the
        # recovery codes given at set-up may stand in for the app's code.
        self.recovery = recovery
        if recovery:
            field = self.fields["code"]
            field.label = "6-digit code, or a recovery code"
            field.help_text = (
                "The code your authenticator app shows for Mail Marketer right now. Lost the "
                "app? Enter one of your recovery codes (like abcde-fghjk); each works once."
            )
            field.widget.attrs["inputmode"] = "text"
        if not autofocus:
            # Where instructions come before the field (the set-up page), a screen reader must
            # not be moved past them.
            self.fields["code"].widget.attrs.pop("autofocus", None)

    def clean_code(self):
        code = self.cleaned_data["code"].replace(" ", "").replace("-", "")
        if self.recovery and normalise_recovery_code(code) is not None:
            return normalise_recovery_code(code)
        if not code.isdigit() or len(code) != 6:
            if self.recovery:
                raise ValidationError(
                    "Enter the 6 digits your authenticator app shows, or a recovery code of "
                    "10 letters and digits."
                )
            raise ValidationError("Enter the 6 digits your authenticator app shows (no letters).")
        return code

    @property
    def is_recovery_code(self) -> bool:
        return len(self.cleaned_data["code"]) == RECOVERY_LENGTH


class CurrentPasswordForm(forms.Form):
    password = forms.CharField(
        label="Your current password",
        strip=False,
        widget=forms.PasswordInput(attrs=dict(autocomplete="current-password", autofocus=True)),
    )


class NewPasswordForm(forms.Form):
    """A new password typed twice and checked with the configured validators.

    `user` is the account the password is for (an unsaved one for someone not yet created): the
    similarity validator compares the password with its email address and name.
    """

    password1 = forms.CharField(
        label="New password",
        strip=False,
        help_text="At least 10 characters; not a common password, not only digits, "
        "not close to your name or email address.",
        widget=forms.PasswordInput(attrs=dict(autocomplete="new-password")),
    )
    password2 = forms.CharField(
        label="New password again",
        strip=False,
        widget=forms.PasswordInput(attrs=dict(autocomplete="new-password")),
    )

    def __init__(self, *args, user: User | None = None, **kwargs):
        self.user = user
        super().__init__(*args, **kwargs)

    def user_for_validation(self) -> User | None:
        return self.user

    def clean_password2(self):
        password1 = self.cleaned_data.get("password1")
        password2 = self.cleaned_data["password2"]
        if password1 and password1 != password2:
            raise ValidationError(MISMATCH_MESSAGE)
        return password2

    def _post_clean(self):
        super()._post_clean()
        password = self.cleaned_data.get("password2")
        if password and "password2" not in self.errors:
            try:
                password_validation.validate_password(password, self.user_for_validation())
            except ValidationError as exc:
                self.add_error("password1", exc)


class PasswordChangeForm(NewPasswordForm):
    current_password = forms.CharField(
        label="Current password",
        strip=False,
        widget=forms.PasswordInput(attrs=dict(autocomplete="current-password", autofocus=True)),
    )

    field_order = ["current_password", "password1", "password2"]


class PasswordResetRequestForm(forms.Form):
    email = EmailField(
        label="Email address",
        max_length=254,
        help_text="The address you sign in with.",
        widget=forms.EmailInput(attrs=dict(autocomplete="email", autofocus=True)),
    )


class SetupForm(NewPasswordForm):
    """The first owner and their workspace."""

    workspace_name = forms.CharField(
        label="Workspace name",
        max_length=Workspace._meta.get_field("name").max_length,
        help_text="Usually your company or brand.",
        widget=forms.TextInput(attrs=dict(autofocus=True, autocomplete="organization")),
    )
    workspace_slug = forms.CharField(
        label="Workspace address",
        max_length=50,
        validators=[slug_validator],
        help_text="Used in links: /app/<address>/. Lower-case letters, digits and hyphens.",
        widget=forms.TextInput(attrs=dict(autocomplete="off", spellcheck="false")),
    )
    name = forms.CharField(
        label="Your name",
        max_length=User._meta.get_field("name").max_length,
        widget=forms.TextInput(attrs=dict(autocomplete="name")),
    )
    email = EmailField(
        label="Your email address",
        max_length=254,
        help_text="You sign in with it.",
        widget=forms.EmailInput(attrs=dict(autocomplete="email")),
    )

    field_order = ["workspace_name", "workspace_slug", "name", "email", "password1", "password2"]

    def clean_workspace_slug(self):
        slug = self.cleaned_data["workspace_slug"].strip().lower()
        if slug in RESERVED_WORKSPACE_SLUGS:
            raise forms.ValidationError(
                f"“{slug}” is a page of the app; choose another address.", code="reserved"
            )
        return slug

    def user_for_validation(self):
        return User(
            email=self.cleaned_data.get("email", ""), name=self.cleaned_data.get("name", "")
        )


class InvitationSignupForm(NewPasswordForm):
    """A new account for an invited address: the address is the invitation's."""

    name = forms.CharField(
        label="Your name",
        max_length=User._meta.get_field("name").max_length,
        widget=forms.TextInput(attrs=dict(autocomplete="name", autofocus=True)),
    )

    field_order = ["name", "password1", "password2"]

    def __init__(self, *args, email: str, **kwargs):
        self.email = email
        super().__init__(*args, **kwargs)

    def user_for_validation(self):
        return User(email=self.email, name=self.cleaned_data.get("name", ""))
