"""A sign-up form's first and last name fields fill the subscriber's first and last name (with
the name shown made from them), on a single opt-in list at once, on a double opt-in list once
the person confirms; never over a stored name."""

from __future__ import annotations

import pytest
from django.test import Client

from mailmarketer.audience import actions as audience
from mailmarketer.audience.models import Subscriber
from mailmarketer.signup.actions import do_create_form
from mailmarketer.testing import FORM_NOTICE

from .support import confirm_path, post, run_engine, sent_messages

pytestmark = pytest.mark.django_db

NAMES = {"email": "ann@example.com", "first_name": "Ann", "last_name": "Berg", "consent": "1"}


def names_form(personas, staff, lists):
    return do_create_form(
        personas.acme,
        name="Names",
        slug="names",
        title="Join",
        intro="",
        fields=[
            {"key": "first_name", "type": "builtin"},
            {"key": "last_name", "type": "builtin"},
        ],
        allowed_origins=[],
        lists=lists,
        notice_text=FORM_NOTICE,
        actor=staff,
    )


def names(workspace):
    person = Subscriber.objects.get(workspace=workspace, email="ann@example.com")
    return (person.first_name, person.last_name, person.name)


def test_a_single_opt_in_sign_up_fills_first_and_last_name(personas, staff, news):
    response = post(names_form(personas, staff, [news]), NAMES)
    assert response.status_code == 200
    assert names(personas.acme) == ("Ann", "Berg", "Ann Berg")


def test_a_double_opt_in_sign_up_fills_them_once_confirmed(personas, staff, weekly):
    post(names_form(personas, staff, [weekly]), NAMES)
    assert names(personas.acme) == ("", "", "")
    run_engine()
    path = confirm_path(sent_messages(personas.acme)[-1])
    Client(enforce_csrf_checks=True).post(path)
    assert names(personas.acme) == ("Ann", "Berg", "Ann Berg")


def test_a_stranger_cannot_rename_someone_through_a_form(personas, staff, news):
    audience.do_create_subscriber(
        personas.acme, email="ann@example.com", first_name="Ann", last_name="Berg", actor=staff
    )
    post(names_form(personas, staff, [news]), {**NAMES, "first_name": "Mallory"})
    assert names(personas.acme) == ("Ann", "Berg", "Ann Berg")
