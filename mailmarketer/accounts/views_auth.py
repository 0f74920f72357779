"""Staff sign-in pages: login (with throttling and the two-factor step), logout, the account page
(two-factor set-up and removal, password change), password reset, first-run setup and
invitation links.

Invariants:
- While an address or an IP is over the failure limit, no password is checked at all (429).
- Unknown address and wrong password get the same message; both are recorded in the audit log,
  which is what the throttle counts, so the limit holds across every web process.
- A user with a confirmed authenticator is not signed in by the password alone: the session only
  remembers who passed the password step, for five minutes, until the code is entered.
- Changing the password or the two-factor set-up ends every other session of the user (the
  session hash covers the password and the security stamp) and keeps this one.
- `next` is followed only to a URL on this host.
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import replace

import django_otp
import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_str
from django.utils.http import (
    url_has_allowed_host_and_scheme,
    urlencode,
    urlsafe_base64_decode,
)
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from mailmarketer.lib.http import client_ip

from . import actions, queries, tasks
from .access import account_view, public_view
from .actors import Actor
from .forms_auth import (
    CurrentPasswordForm,
    InvitationSignupForm,
    LoginForm,
    NewPasswordForm,
    PasswordChangeForm,
    PasswordResetRequestForm,
    SetupForm,
    TotpCodeForm,
)
from .models import User
from .permissions import role_sees_personal_data
from .setup import check_setup_token, setup_needed

logger = logging.getLogger(__name__)

BACKEND = "django.contrib.auth.backends.ModelBackend"
# One message for an unknown address and a wrong password, so the form does not tell anyone
# which addresses have accounts.
BAD_CREDENTIALS = (
    "That email address and password do not match an account. Check both and try again."
)
BAD_CODE = (
    "That code is not right, or it has been used already. Enter the code your app shows now; "
    "if it keeps failing, check that your phone's clock is set automatically."
)
BAD_RECOVERY_CODE = (
    "That recovery code is not right, or it has been used already: each code works once."
)
WRONG_CURRENT_MESSAGE = "That is not your current password."
# New recovery codes wait here for the one page that shows them, once.
CODES_TO_SHOW_KEY = "mm_recovery_codes_to_show"

# The password step of a two-factor sign-in: {"user": id, "at": unix time, "next": url}.
PENDING_KEY = "mm_login_pending"
PENDING_MAX_AGE = 5 * 60
RESET_SESSION_KEY = "mm_password_reset_token"
RESET_URL_TOKEN = "set-password"  # noqa: S105 - a URL marker, not a secret


# -- helpers -------------------------------------------------------------------------------


def _safe_next(request) -> str:
    """The `next` parameter when it points at this site, else ""."""
    url = request.POST.get("next") or request.GET.get("next") or ""
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return ""


def _with_next(name: str, next_url: str) -> str:
    url = reverse(name)
    return f"{url}?{urlencode({'next': next_url})}" if next_url else url


def _warn_codes_left(request, user) -> None:
    left = queries.recovery_codes_left(user)
    messages.warning(
        request,
        f"You signed in with a recovery code; {left} of them left. If your authenticator app "
        "is gone, set it up again and make new recovery codes on your account page.",
    )


def _throttled(email: str, ip: str | None) -> bool:
    by_email, by_ip = queries.login_failures(email, ip)
    return by_email >= settings.LOGIN_FAILURE_LIMIT or by_ip >= settings.LOGIN_FAILURE_IP_LIMIT


def _throttled_response(request):
    minutes = max(1, round(settings.LOGIN_FAILURE_WINDOW / 60))
    response = render(request, "accounts/login_throttled.html", {"minutes": minutes}, status=429)
    response["Retry-After"] = str(settings.LOGIN_FAILURE_WINDOW)
    return response


def _check_password(email: str, password: str):
    """(user, None) when the password is right, else (None, reason for the audit log)."""
    user = queries.get_user_by_email(email)
    if user is None:
        # Hash anyway, so that an unknown address takes as long as a known one.
        User().set_password(password)
        return None, "unknown_user"
    if not user.check_password(password):
        return None, "bad_password"
    if not user.is_active:
        return None, "inactive"
    return user, None


def _code_refused_message(device) -> str | None:
    """Why the device takes no code right now (too many wrong ones), or None."""
    allowed, info = device.verify_is_allowed()
    if allowed:
        return None
    locked_until = (info or {}).get("locked_until")
    if locked_until is not None:
        seconds = max(1, int((locked_until - timezone.now()).total_seconds()) + 1)
        return f"Too many wrong codes. Wait {seconds} seconds, then enter the current code."
    return "Too many wrong codes. Wait a little, then enter the current code."


def _finish_login(request, user, *, method: str, device=None) -> None:
    login(request, user, backend=BACKEND)
    if device is not None:
        django_otp.login(request, device)
    actions.record_login(user, ip=client_ip(request), method=method)


def _keep_this_session(request) -> None:
    """After a change to the password or the security stamp: every other session of the user
    no longer matches; this one is updated to match."""
    request.user.refresh_from_db(fields=["password", "security_stamp"])
    update_session_auth_hash(request, request.user)


def _otp_verified(request) -> bool:
    is_verified = getattr(request.user, "is_verified", None)
    return bool(is_verified and is_verified())


# -- login and logout ----------------------------------------------------------------------


@public_view
def root(request):
    return redirect("app-home")


@public_view
@sensitive_post_parameters("password")
@never_cache
@require_http_methods(["GET", "POST"])
def login_view(request):
    next_url = _safe_next(request)
    if request.method == "GET" and request.user.is_authenticated:
        return redirect(next_url or settings.LOGIN_REDIRECT_URL)
    form = LoginForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        email = form.cleaned_data["email"]
        ip = client_ip(request)
        if _throttled(email, ip):
            return _throttled_response(request)
        user, reason = _check_password(email, form.cleaned_data["password"])
        if reason == "inactive":
            actions.record_login_failed(email, ip=ip, reason=reason)
            form.add_error(None, "This account has been deactivated. Ask an owner of your team.")
        elif reason:
            actions.record_login_failed(email, ip=ip, reason=reason)
            form.add_error(None, BAD_CREDENTIALS)
        elif queries.confirmed_device(user) is not None:
            # Password right; the code decides. A fresh session id for the half-signed-in state.
            request.session.cycle_key()
            request.session[PENDING_KEY] = {"user": user.pk, "at": time.time(), "next": next_url}
            return redirect("login-2fa")
        else:
            _finish_login(request, user, method="password")
            return redirect(next_url or settings.LOGIN_REDIRECT_URL)
    return render(
        request,
        "accounts/login.html",
        {"form": form, "next": next_url, "setup_needed": setup_needed()},
    )


def _pending_login(request):
    """(user, next) for a valid password step, or (None, reason) with reason "" or "expired"."""
    pending = request.session.get(PENDING_KEY)
    if not isinstance(pending, dict):
        return None, ""
    if time.time() - float(pending.get("at", 0)) > PENDING_MAX_AGE:
        del request.session[PENDING_KEY]
        return None, "expired"
    user = queries.get_active_user(pending.get("user"))
    if user is None:
        del request.session[PENDING_KEY]
        return None, ""
    return user, pending.get("next") or ""


@public_view
@never_cache
@require_http_methods(["GET", "POST"])
def login_2fa(request):
    user, next_or_reason = _pending_login(request)
    if user is None:
        if next_or_reason == "expired":
            messages.error(
                request,
                "Signing in took more than 5 minutes between the password and the code. "
                "Enter your password again.",
            )
        return redirect("login")
    next_url = next_or_reason
    device = queries.confirmed_device(user)
    if device is None:
        # Two-factor was turned off meanwhile: the password step stands on its own again.
        del request.session[PENDING_KEY]
        _finish_login(request, user, method="password")
        return redirect(next_url or settings.LOGIN_REDIRECT_URL)
    form = TotpCodeForm(request.POST if request.method == "POST" else None, recovery=True)
    if form.is_valid():
        ip = client_ip(request)
        if _throttled(user.email, ip):
            return _throttled_response(request)
        refused = None if form.is_recovery_code else _code_refused_message(device)
        if refused:
            form.add_error("code", refused)
        elif form.is_recovery_code and actions.do_use_recovery_code(
            user, form.cleaned_data["code"], actor=Actor.for_user(user, ip)
        ):
            del request.session[PENDING_KEY]
            _finish_login(request, user, method="password+recovery_code", device=device)
            _warn_codes_left(request, user)
            return redirect(next_url or settings.LOGIN_REDIRECT_URL)
        elif not form.is_recovery_code and device.verify_token(form.cleaned_data["code"]):
            del request.session[PENDING_KEY]
            _finish_login(request, user, method="password+totp", device=device)
            return redirect(next_url or settings.LOGIN_REDIRECT_URL)
        else:
            actions.record_login_failed(user.email, ip=ip, reason="bad_2fa_code")
            form.add_error("code", BAD_RECOVERY_CODE if form.is_recovery_code else BAD_CODE)
    return render(request, "accounts/login_2fa.html", {"form": form, "email": user.email})


@public_view
@require_POST
def logout_view(request):
    if request.user.is_authenticated:
        actions.record_logout(request.user, ip=client_ip(request))
    next_url = _safe_next(request)
    logout(request)
    messages.success(request, "You have signed out.")
    return redirect(next_url or "login")


# -- the account page ----------------------------------------------------------------------


@account_view
@never_cache
def account(request):
    device = queries.confirmed_device(request.user)
    return render(
        request,
        "accounts/account.html",
        {
            "device": device,
            "verified": _otp_verified(request),
            "codes_left": queries.recovery_codes_left(request.user) if device else 0,
        },
    )


@account_view
@never_cache
@require_http_methods(["GET", "POST"])
def account_recovery_codes(request):
    """Shows new recovery codes once (after set-up, or after making new ones), else how many are
    left with a button to replace them all. Making new ones needs a session that has used the
    second factor, like every other change to it."""
    user = request.user
    if queries.confirmed_device(user) is None:
        return redirect("account")
    next_url = _safe_next(request)
    if request.method == "POST":
        if not _otp_verified(request):
            return redirect(_with_next("account-2fa", reverse("account-recovery-codes")))
        actor = Actor.from_request(request)
        request.session[CODES_TO_SHOW_KEY] = actions.do_make_recovery_codes(user, actor=actor)
        return redirect("account-recovery-codes")
    codes = request.session.pop(CODES_TO_SHOW_KEY, None)
    return render(
        request,
        "accounts/account_recovery_codes.html",
        {
            "codes": codes,
            "left": queries.recovery_codes_left(user),
            "next": next_url,
            "verified": _otp_verified(request),
        },
    )


def _required_by(request) -> list:
    """Workspaces of this user whose 2FA policy covers their role."""
    return [
        m.workspace
        for m in queries.memberships_for_user(request.user)
        if m.workspace.require_2fa and role_sees_personal_data(m.role)
    ]


def _qr_svg(device) -> str:
    svg = segno.make(device.config_url(), error="m").svg_inline(
        scale=4, border=2, omitsize=True, title="QR code for your authenticator app"
    )
    # The <title> names the image for screen readers once the element says it is one.
    return svg.replace("<svg ", '<svg role="img" ', 1)


def _grouped_secret(device) -> str:
    secret = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


@account_view
@never_cache
@require_http_methods(["GET", "POST"])
def account_2fa(request):
    """Two-factor for this session: enter a code when an authenticator is set up but this
    session has not used it (a workspace requires it), else set one up."""
    user = request.user
    next_url = _safe_next(request)
    required = request.POST.get("required") or request.GET.get("required") or ""
    membership = queries.get_membership(user, required) if required else None
    required_workspace = membership.workspace if membership is not None else None
    device = queries.confirmed_device(user)
    form = TotpCodeForm(
        request.POST if request.method == "POST" else None,
        autofocus=device is not None,
        recovery=device is not None,
    )
    context = {"form": form, "next": next_url, "required_workspace": required_workspace}

    if device is not None:
        if _otp_verified(request):
            return redirect(next_url or "account")
        if form.is_valid():
            ip = client_ip(request)
            if _throttled(user.email, ip):
                return _throttled_response(request)
            refused = None if form.is_recovery_code else _code_refused_message(device)
            if refused:
                form.add_error("code", refused)
            elif form.is_recovery_code and actions.do_use_recovery_code(
                user, form.cleaned_data["code"], actor=Actor.from_request(request)
            ):
                django_otp.login(request, device)
                _warn_codes_left(request, user)
                return redirect(next_url or "account")
            elif not form.is_recovery_code and device.verify_token(form.cleaned_data["code"]):
                django_otp.login(request, device)
                return redirect(next_url or "account")
            else:
                actions.record_login_failed(user.email, ip=ip, reason="bad_2fa_code")
                form.add_error("code", BAD_RECOVERY_CODE if form.is_recovery_code else BAD_CODE)
        return render(request, "accounts/account_2fa_verify.html", context)

    # Setting up: the device waits unconfirmed (reused across reloads, so a scanned QR code
    # stays valid) until a code from it is entered.
    actor = Actor.from_request(request)
    pending = queries.unconfirmed_device(user) or actions.do_start_totp(user, actor=actor)
    if form.is_valid():
        refused = _code_refused_message(pending)
        if refused:
            form.add_error("code", refused)
        elif actions.do_confirm_totp(pending, form.cleaned_data["code"], actor=actor):
            _keep_this_session(request)
            django_otp.login(request, pending)
            request.session[CODES_TO_SHOW_KEY] = actions.do_make_recovery_codes(user, actor=actor)
            messages.success(
                request,
                "Two-factor authentication is on. You were signed out everywhere else; "
                "from now on, signing in asks for a code from your app.",
            )
            return redirect(_with_next("account-recovery-codes", next_url))
        else:
            form.add_error("code", BAD_CODE)
    context.update(qr_svg=_qr_svg(pending), secret=_grouped_secret(pending))
    return render(request, "accounts/account_2fa_setup.html", context)


@account_view
@sensitive_post_parameters("password")
@never_cache
@require_http_methods(["GET", "POST"])
def account_2fa_disable(request):
    user = request.user
    if queries.confirmed_device(user) is None:
        messages.info(request, "Two-factor authentication is already off.")
        return redirect("account")
    form = CurrentPasswordForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        ip = client_ip(request)
        if _throttled(user.email, ip):
            return _throttled_response(request)
        if user.check_password(form.cleaned_data["password"]):
            actions.do_disable_totp(user, actor=Actor.from_request(request))
            _keep_this_session(request)
            request.session.pop(django_otp.DEVICE_ID_SESSION_KEY, None)
            messages.success(
                request,
                "Two-factor authentication is off. You were signed out everywhere else.",
            )
            return redirect("account")
        actions.record_login_failed(user.email, ip=ip, reason="bad_password")
        form.add_error("password", WRONG_CURRENT_MESSAGE)
    return render(
        request,
        "accounts/account_2fa_disable.html",
        {"form": form, "required_by": _required_by(request)},
    )


@account_view
@sensitive_post_parameters("current_password", "password1", "password2")
@never_cache
@require_http_methods(["GET", "POST"])
def account_password(request):
    user = request.user
    form = PasswordChangeForm(request.POST if request.method == "POST" else None, user=user)
    if form.is_valid():
        ip = client_ip(request)
        if _throttled(user.email, ip):
            return _throttled_response(request)
        if user.check_password(form.cleaned_data["current_password"]):
            actions.do_change_password(
                user, form.cleaned_data["password1"], actor=Actor.from_request(request)
            )
            _keep_this_session(request)
            messages.success(
                request, "Your password has been changed. You were signed out everywhere else."
            )
            return redirect("account")
        actions.record_login_failed(user.email, ip=ip, reason="bad_password")
        form.add_error("current_password", WRONG_CURRENT_MESSAGE)
    return render(request, "accounts/account_password.html", {"form": form})


# -- password reset ------------------------------------------------------------------------


@public_view
@never_cache
@require_http_methods(["GET", "POST"])
def password_reset(request):
    form = PasswordResetRequestForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        email = form.cleaned_data["email"]
        ip = client_ip(request)
        # Without a limit, anyone could flood a staff member's inbox with reset mail. Past it,
        # the page reads the same (it must not tell whether the address has an account).
        by_email, by_ip = queries.recent_auth_events("auth.password_reset_requested", email, ip)
        flooding = (
            by_email >= settings.PASSWORD_RESET_LIMIT or by_ip >= settings.LOGIN_FAILURE_IP_LIMIT
        )
        actions.record_password_reset_request(email, ip=ip)
        if not flooding:
            # Queued for every address, known or not, and looked up by the worker: the answer
            # takes the same time either way, whatever the relay's latency (accounts.tasks).
            tasks.send_password_reset.enqueue(email, ip or "")
        return redirect("password-reset-sent")
    return render(request, "accounts/password_reset.html", {"form": form})


@public_view
@require_http_methods(["GET"])
def password_reset_sent(request):
    return render(
        request,
        "accounts/password_reset_sent.html",
        {"hours": max(1, settings.PASSWORD_RESET_TIMEOUT // 3600)},
    )


def _reset_user(uidb64: str):
    try:
        pk = int(force_str(urlsafe_base64_decode(uidb64)))
    except (TypeError, ValueError, OverflowError):
        return None
    return queries.get_active_user(pk)


@public_view
@sensitive_post_parameters("password1", "password2")
@never_cache
@require_http_methods(["GET", "POST"])
def password_reset_confirm(request, uidb64: str, token: str):
    """Like Django's PasswordResetConfirmView: the token moves from the URL into the session
    (then the URL no longer carries it, so no Referer or history can leak it)."""
    user = _reset_user(uidb64)
    if user is not None and token != RESET_URL_TOKEN:
        if default_token_generator.check_token(user, token):
            request.session[RESET_SESSION_KEY] = token
            return redirect("password-reset-confirm", uidb64=uidb64, token=RESET_URL_TOKEN)
        user = None
    if user is not None:
        token = request.session.get(RESET_SESSION_KEY, "")
        if not default_token_generator.check_token(user, token):
            user = None
    if user is None:
        return render(request, "accounts/password_reset_invalid.html", status=410)

    form = NewPasswordForm(request.POST if request.method == "POST" else None, user=user)
    if form.is_valid():
        actions.do_change_password(
            user,
            form.cleaned_data["password1"],
            actor=Actor.for_user(user, client_ip(request)),
            event="auth.password_reset",
        )
        del request.session[RESET_SESSION_KEY]
        messages.success(request, "Your new password is set. Sign in with it.")
        return redirect("login")
    return render(
        request, "accounts/password_reset_confirm.html", {"form": form, "email": user.email}
    )


# -- first-run setup -----------------------------------------------------------------------


@public_view
@sensitive_post_parameters("password1", "password2")
@never_cache
@require_http_methods(["GET", "POST"])
def setup(request, token: str):
    if not check_setup_token(token):
        raise Http404("This setup link is not valid")
    if not setup_needed():
        return render(request, "accounts/setup_done.html", status=410)
    form = SetupForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        data = form.cleaned_data
        try:
            user, workspace = actions.do_setup_first_owner(
                email=data["email"],
                name=data["name"],
                password=data["password1"],
                workspace_name=data["workspace_name"],
                workspace_slug=data["workspace_slug"],
            )
        except actions.ActionError as exc:
            if not setup_needed():
                return render(request, "accounts/setup_done.html", status=410)
            form.add_error("workspace_slug", str(exc))
        except ValidationError as exc:
            form.add_error(None, "; ".join(exc.messages))
        else:
            _finish_login(request, user, method="setup")
            messages.success(request, f"Welcome! {workspace.name} is ready.")
            return redirect("app-dashboard", ws=workspace.slug)
    return render(request, "accounts/setup.html", {"form": form})


# -- invitations ---------------------------------------------------------------------------


def _invalid_invitation(request):
    return render(request, "accounts/invite_invalid.html", status=410)


@public_view
@sensitive_post_parameters("password1", "password2")
@never_cache
@require_http_methods(["GET", "POST"])
def invite(request, token: str):
    invitation = actions.invitation_from_token(token)
    if invitation is None:
        return _invalid_invitation(request)
    context = {"invitation": invitation, "ws_name": invitation.workspace.name}
    existing = queries.get_user_by_email(invitation.email)

    if existing is not None:
        if not request.user.is_authenticated:
            login_url = f"{reverse('login')}?{urlencode({'next': request.path})}"
            return render(
                request,
                "accounts/invite.html",
                {**context, "state": "login", "login_url": login_url},
            )
        if request.user.pk != existing.pk:
            login_next = f"{reverse('login')}?{urlencode({'next': request.path})}"
            return render(
                request,
                "accounts/invite.html",
                {**context, "state": "other_user", "login_next": login_next},
            )
        if request.method == "POST":
            try:
                actions.do_accept_invitation(
                    invitation, request.user, actor=Actor.from_request(request)
                )
            except actions.Conflict:
                return _invalid_invitation(request)
            messages.success(request, f"You have joined {invitation.workspace.name}.")
            return redirect("app-dashboard", ws=invitation.workspace.slug)
        return render(request, "accounts/invite.html", {**context, "state": "accept"})

    form = InvitationSignupForm(
        request.POST if request.method == "POST" else None, email=invitation.email
    )
    if form.is_valid():
        ip = client_ip(request)
        try:
            with transaction.atomic():
                user = actions.do_create_user(
                    email=invitation.email,
                    name=form.cleaned_data["name"],
                    password=form.cleaned_data["password1"],
                    actor=replace(Actor.system("invitation"), ip=ip),
                )
                actions.do_accept_invitation(invitation, user, actor=Actor.for_user(user, ip))
        except actions.ActionError:
            # Used meanwhile (the link clicked twice), or the account was just made elsewhere.
            return redirect("invite", token=token)
        _finish_login(request, user, method="invitation")
        messages.success(request, f"Welcome! You have joined {invitation.workspace.name}.")
        return redirect("app-dashboard", ws=invitation.workspace.slug)
    return render(request, "accounts/invite.html", {**context, "state": "signup", "form": form})
