"""Template context for the shell: the current workspace, the switcher and the navigation."""

from mailmarketer.accounts.queries import memberships_for_user

from .nav import sections_for


def shell(request):
    membership = getattr(request, "membership", None)
    if membership is None:
        return {}
    return {
        "workspace": membership.workspace,
        "membership": membership,
        "perms_here": membership.permissions,
        "nav": sections_for(membership, request.path),
        "workspaces": memberships_for_user(request.user),
    }
