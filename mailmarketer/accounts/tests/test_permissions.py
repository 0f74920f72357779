from mailmarketer.accounts import permissions as p


def test_it_gives_every_role_only_catalogued_permissions():
    for role in p.Role.values:
        assert p.permissions_for(role) <= set(p.CATALOGUE), role


def test_it_never_lets_analysts_see_personal_data_or_export():
    analyst = p.permissions_for(p.Role.ANALYST)
    assert p.VIEW_PERSONAL_DATA not in analyst
    assert p.AUDIENCE_EXPORT not in analyst


def test_it_keeps_team_and_token_management_with_owners_and_admins():
    for perm in (p.TEAM_MANAGE, p.TOKENS_MANAGE, p.SETTINGS_MANAGE, p.AUDIT_VIEW, p.OUTBOX_VIEW):
        holders = {role for role in p.Role.values if perm in p.permissions_for(role)}
        assert holders == {p.Role.OWNER, p.Role.ADMIN}, perm


def test_it_refuses_unknown_permission_names():
    import pytest

    with pytest.raises(ValueError, match="unknown permission"):
        p.check_known("audience.view_everything")
