"""Sign-in routes: login and its two-factor step, logout, the account pages, password reset,
first-run setup and invitation links. Each view names its access rule (access.py)."""

from django.urls import path

from . import views_auth

urlpatterns = [
    path("", views_auth.root, name="root"),
    path("login/", views_auth.login_view, name="login"),
    path("login/2fa/", views_auth.login_2fa, name="login-2fa"),
    path("logout/", views_auth.logout_view, name="logout"),
    path("account/", views_auth.account, name="account"),
    path("account/2fa/", views_auth.account_2fa, name="account-2fa"),
    path("account/2fa/disable/", views_auth.account_2fa_disable, name="account-2fa-disable"),
    path(
        "account/2fa/recovery-codes/",
        views_auth.account_recovery_codes,
        name="account-recovery-codes",
    ),
    path("account/password/", views_auth.account_password, name="account-password"),
    path("password-reset/", views_auth.password_reset, name="password-reset"),
    path("password-reset/sent/", views_auth.password_reset_sent, name="password-reset-sent"),
    path(
        "password-reset/<uidb64>/<token>/",
        views_auth.password_reset_confirm,
        name="password-reset-confirm",
    ),
    path("setup/<token>/", views_auth.setup, name="setup"),
    path("invite/<token>/", views_auth.invite, name="invite"),
]
