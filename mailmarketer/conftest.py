"""Shared fixtures. Personas (STYLE.md): alice owns workspace "acme", bob is its marketer, carol
its analyst; mallory owns another workspace, "evil", and must never see anything of acme."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mailmarketer.accounts.models import Workspace
from mailmarketer.accounts.permissions import Role
from mailmarketer.testing import client_for, make_member, make_user


@pytest.fixture(autouse=True)
def _outbox_dir(settings, tmp_path):
    # The test runner swaps in Django's in-memory mail backend; use the real outbox instead,
    # in a directory of the test's own.
    settings.EMAIL_BACKEND = "mailmarketer.lib.outbox.OutboxBackend"
    settings.OUTBOX_DIR = tmp_path / "outbox"
    return settings.OUTBOX_DIR


@pytest.fixture
def acme(db):
    return Workspace.objects.create(
        name="Acme", slug="acme", sender_name="Acme", sender_email="news@acme.test"
    )


@pytest.fixture
def evil(db):
    return Workspace.objects.create(name="Evil", slug="evil")


@pytest.fixture
def personas(acme, evil):
    alice = make_user("alice@acme.test", "Alice")
    bob = make_user("bob@acme.test", "Bob")
    carol = make_user("carol@acme.test", "Carol")
    mallory = make_user("mallory@evil.test", "Mallory")
    make_member(acme, alice, Role.OWNER)
    make_member(acme, bob, Role.MARKETER)
    make_member(acme, carol, Role.ANALYST)
    make_member(evil, mallory, Role.OWNER)
    return SimpleNamespace(alice=alice, bob=bob, carol=carol, mallory=mallory, acme=acme, evil=evil)


@pytest.fixture
def alice_client(personas):
    return client_for(personas.alice)


@pytest.fixture
def bob_client(personas):
    return client_for(personas.bob)


@pytest.fixture
def carol_client(personas):
    return client_for(personas.carol)


@pytest.fixture
def mallory_client(personas):
    return client_for(personas.mallory)
