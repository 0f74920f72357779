from django.urls import include, path

urlpatterns = [
    # Sign-in, sign-out, two-factor, password reset and change, first-run setup, invitations.
    path("", include("mailmarketer.accounts.urls_auth")),
    # Workspace pages: team, API tokens, audit log, workspace settings.
    path("", include("mailmarketer.accounts.urls_team")),
]
