"""A per-token request limit: settings.API_RATE_PER_MINUTE (MM_API_RATE_PER_MINUTE) per minute.

A fixed one-minute window counted with `cache.add` + `cache.incr`, which are atomic in every
Django cache backend, rather than Ninja's SimpleRateThrottle: that one keeps a list of
timestamps per key (re-pickled on every request) and the state of the request it is judging on
the shared throttle object, which concurrent threads would overwrite.

The counts live in Django's cache. With no CACHES configured that is the local-memory cache, so
each process counts on its own and N web processes allow up to N times the limit. That is
accepted for now: the limit is there to stop a runaway script, not to meter; a shared cache
(CACHES pointing at Redis or the database) makes it exact without touching this code.
"""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.core.cache import cache
from ninja.throttling import BaseThrottle

WINDOW_SECONDS = 60


class TokenRateThrottle(BaseThrottle):
    """Runs after authentication (Ninja's order), so request.auth is the ApiToken."""

    timer = time.time

    def __init__(self):
        # Ninja asks wait() right after a refusal, in the same thread, without the request.
        self._local = threading.local()

    def allow_request(self, request) -> bool:
        token = getattr(request, "auth", None)
        if token is None:
            return True
        now = self.timer()
        window = int(now // WINDOW_SECONDS)
        key = f"mm:api-rate:{token.pk}:{window}"
        cache.add(key, 0, timeout=WINDOW_SECONDS * 2)
        try:
            count = cache.incr(key)
        except ValueError:  # evicted between add and incr: this request starts the count
            cache.set(key, 1, timeout=WINDOW_SECONDS * 2)
            count = 1
        if count <= settings.API_RATE_PER_MINUTE:
            return True
        self._local.wait = (window + 1) * WINDOW_SECONDS - now
        return False

    def wait(self) -> float | None:
        return getattr(self._local, "wait", None)
