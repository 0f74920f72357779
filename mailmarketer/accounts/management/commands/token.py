"""`mailmarketer token create | list | revoke`: API tokens from the command line.

`create` prints the raw token alone on standard output, so `TOKEN=$(mailmarketer token create
...)` captures exactly it; everything meant for a person goes to standard error.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from mailmarketer.accounts.actions import ActionError, do_create_api_token, do_revoke_api_token
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.cli_args import COMMANDS, token_arguments
from mailmarketer.accounts.models import ApiToken, Workspace
from mailmarketer.accounts.queries import api_tokens_of


def get_workspace(slug: str) -> Workspace:
    workspace = Workspace.objects.filter(slug=slug).first()
    if workspace is None:
        raise CommandError(
            f"no workspace with the slug {slug!r} (create one with `mailmarketer createuser`)"
        )
    return workspace


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def _status(token: ApiToken) -> str:
    if not token.is_active:
        return f"revoked {_when(token.revoked_at)}"
    return f"stopped: {token.stopped}" if token.stopped else "active"


class Command(BaseCommand):
    help = COMMANDS["token"][0]

    def add_arguments(self, parser):
        token_arguments(parser)

    def handle(self, *, action, workspace, **options):
        ws = get_workspace(workspace)
        try:
            getattr(self, f"do_{action}")(ws, **options)
        except ActionError as exc:
            raise CommandError(str(exc)) from None

    def do_create(self, ws: Workspace, *, role: str, name: str, **options) -> None:
        token, raw = do_create_api_token(ws, name=name, role=role, actor=Actor.system("cli"))
        self.stderr.write(
            f"Created API token {token.name!r} ({token.prefix}…) for {ws.slug} with role "
            f"{token.role}. It is shown this once: store it now.",
            style_func=str,  # information, not an error: no red
        )
        self.stdout.write(raw)

    def do_list(self, ws: Workspace, **options) -> None:
        tokens = api_tokens_of(ws)
        if not tokens:
            self.stderr.write(f"{ws.slug} has no API tokens.", style_func=str)
            return
        rows = [("PREFIX", "NAME", "ROLE", "CREATED", "LAST USED", "STATUS")]
        rows += [
            (
                t.prefix,
                t.name,
                t.role,
                _when(t.created_at),
                _when(t.last_used_at),
                _status(t),
            )
            for t in tokens
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write(
                "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            )

    def do_revoke(self, ws: Workspace, *, prefix: str, **options) -> None:
        prefix = prefix.rstrip("…").strip()
        if not prefix:
            raise CommandError("--prefix is empty")
        matches = list(
            ApiToken.objects.filter(workspace=ws, revoked_at=None, prefix__startswith=prefix)
        )
        if not matches:
            raise CommandError(
                f"no active token of {ws.slug} has the prefix {prefix!r} "
                "(see `mailmarketer token list`)"
            )
        if len(matches) > 1:
            names = ", ".join(f"{t.prefix} ({t.name})" for t in matches)
            raise CommandError(f"the prefix {prefix!r} matches several tokens: {names}")
        token = matches[0]
        do_revoke_api_token(token, actor=Actor.system("cli"))
        self.stdout.write(f"Revoked {token.name!r} ({token.prefix}…) of {ws.slug}.")
