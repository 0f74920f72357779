"""Workspace pages of accounts. Each view names its permission in its decorator (views_team.py):
pages need the *_VIEW permission, each change is a POST route needing the *_MANAGE one."""

from django.urls import path

from . import views_team as v

urlpatterns = [
    path("app/<slug:ws>/team/", v.team, name="team"),
    path("app/<slug:ws>/team/invite/", v.team_invite, name="team-invite"),
    path("app/<slug:ws>/team/<int:membership_id>/role/", v.team_change_role, name="team-role"),
    path("app/<slug:ws>/team/<int:membership_id>/remove/", v.team_remove, name="team-remove"),
    path(
        "app/<slug:ws>/team/invitations/<int:invitation_id>/revoke/",
        v.team_revoke_invitation,
        name="team-invitation-revoke",
    ),
    path("app/<slug:ws>/tokens/", v.tokens, name="tokens"),
    path("app/<slug:ws>/tokens/new/", v.token_create, name="token-create"),
    path("app/<slug:ws>/tokens/<int:token_id>/revoke/", v.token_revoke, name="token-revoke"),
    path("app/<slug:ws>/tokens/<int:token_id>/reissue/", v.token_reissue, name="token-reissue"),
    path("app/<slug:ws>/audit/", v.audit, name="audit"),
    path("app/<slug:ws>/settings/", v.workspace_settings, name="settings-workspace"),
    path("app/<slug:ws>/settings/save/", v.workspace_settings_save, name="settings-workspace-save"),
]
