"""Background jobs of accounts, run by the worker (django-tasks' database backend).

The password-reset mail is sent here rather than in the request: a relay answering in 400 ms
made a known address's reset request take 400 ms and an unknown one's 10 ms, which told anyone
which staff accounts exist. The page now queues the same job for every address (the lookup
happens here) and answers in the same time whatever the relay does.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django_tasks import task

from mailmarketer.lib import emails

from . import queries

logger = logging.getLogger(__name__)


def reset_link(user) -> str:
    uidb64 = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    path = reverse("password-reset-confirm", kwargs={"uidb64": uidb64, "token": token})
    return f"{settings.BASE_URL}{path}"


@task()
def send_password_reset(email: str, ip: str) -> None:
    """Mail a reset link to the active account with this address, if there is one."""
    user = queries.get_user_by_email(email)
    if user is None or not user.is_active:
        return
    emails.send(
        "password_reset",
        to=user.email,
        context={
            "name": user.display_name,
            "email": user.email,
            "link": reset_link(user),
            "hours": max(1, settings.PASSWORD_RESET_TIMEOUT // 3600),
            "ip": ip or "unknown",
        },
    )
    logger.info("password reset mail sent to user %s", user.pk)
