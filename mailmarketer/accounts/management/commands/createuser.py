"""`mailmarketer createuser`: a staff user with a role in a workspace.

Creates what is missing: the user (unless one has that email already), the workspace (unless
the slug exists; named after the slug), then the membership. All of it in one transaction, so a
refusal (an existing membership, a weak password, a bad slug) leaves nothing half-made.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.urls import reverse

from mailmarketer.accounts.actions import (
    ActionError,
    do_add_member,
    do_create_user,
    do_create_workspace,
)
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.cli_args import COMMANDS, createuser_arguments
from mailmarketer.accounts.models import User, Workspace
from mailmarketer.accounts.permissions import Role


def describe(exc: ValidationError) -> str:
    """A ValidationError as one readable line: 'field: message; field: message'."""
    if hasattr(exc, "error_dict"):
        return "; ".join(
            f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items()
        )
    return " ".join(exc.messages)


def workspace_name_for(slug: str) -> str:
    return slug.replace("-", " ").title()


class Command(BaseCommand):
    help = COMMANDS["createuser"][0]

    def add_arguments(self, parser):
        createuser_arguments(parser)

    def handle(self, *, email, workspace, role, name, password_file, **options):
        if role not in Role.values:
            raise CommandError(f"unknown role {role!r}; choose one of: {', '.join(Role.values)}")
        email = User.objects.normalize_email(email)
        user = User.objects.filter(email=email).first()
        password = None
        if user is None:
            password = self.read_password(password_file, email=email, name=name)
        elif password_file:
            self.stderr.write(
                f"{email} already exists: their password is left unchanged.", style_func=str
            )

        actor = Actor.system("cli")
        done = []
        try:
            with transaction.atomic():
                if user is None:
                    user = do_create_user(email=email, name=name, password=password, actor=actor)
                    done.append(f"Created user {user.email}.")
                ws = Workspace.objects.filter(slug=workspace).first()
                if ws is None:
                    try:
                        ws = do_create_workspace(
                            name=workspace_name_for(workspace),
                            slug=workspace,
                            owner=None,
                            actor=actor,
                        )
                    except ValidationError as exc:
                        raise CommandError(f"--workspace {workspace!r}: {describe(exc)}") from None
                    done.append(f"Created workspace {ws.name} ({ws.slug}).")
                do_add_member(ws, user, role, actor=actor)
                done.append(f"Added {user.email} to {ws.name} as {role}.")
        except ValidationError as exc:
            raise CommandError(describe(exc)) from None
        except ActionError as exc:
            raise CommandError(str(exc)) from None

        for line in done:
            self.stdout.write(line)
        if not user.has_usable_password():
            reset = settings.BASE_URL + reverse("password-reset")
            self.stdout.write(
                f"{user.email} has no password yet: they set one on the password-reset page, "
                f"{reset} (without MM_SMTP_URL the email lands in the outbox, "
                f"{settings.OUTBOX_DIR})."
            )

    def read_password(self, password_file: str | None, *, email: str, name: str) -> str | None:
        """From the file, else asked twice on a terminal, else None (an unusable password)."""
        if password_file == "-":  # noqa: S105 - the name of standard input, not a password
            password = _one_line(sys.stdin.read())
            source = "standard input"
        elif password_file:
            try:
                password = _one_line(Path(password_file).read_text())
            except OSError as exc:
                raise CommandError(
                    f"cannot read --password-file {password_file!r}: {exc.strerror}"
                ) from None
            source = password_file
        elif sys.stdin.isatty():
            password = getpass.getpass(f"Password for {email}: ")
            if getpass.getpass("Password (again): ") != password:
                raise CommandError("the two passwords differ; nothing was created")
            source = "the prompt"
        else:
            return None
        if not password:
            raise CommandError(f"the password from {source} is empty; nothing was created")
        try:
            validate_password(password, user=User(email=email, name=name))
        except ValidationError as exc:
            raise CommandError(f"password refused: {' '.join(exc.messages)}") from None
        return password


def _one_line(text: str) -> str:
    # A file written by `echo` ends with a newline that is not part of the password; any other
    # whitespace is kept, since it may be.
    return text.removesuffix("\n").removesuffix("\r")
