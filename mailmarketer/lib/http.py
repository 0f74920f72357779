"""Request and response helpers: the Content-Security-Policy, private caching, and the client's
address."""

from __future__ import annotations

from django.conf import settings
from django.utils.cache import patch_cache_control

# No inline scripts, no inline styles, nothing from another origin. Pages that must differ (the
# sandboxed outbox preview) set their own header, which this middleware leaves alone.
DEFAULT_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "frame-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", DEFAULT_CSP)
        response.headers.setdefault(
            "Permissions-Policy", "camera=(), microphone=(), geolocation=()"
        )
        return response


class PrivateByDefaultMiddleware:
    """`Cache-Control: no-store, private` on every response that does not set its own.

    Nearly every page and API answer holds someone's data (a subscriber's address, a ledger, a
    staff member's own settings), and a shared cache or the browser's disk keeping a copy is
    how that data outlives a sign-out. Naming the pages that need it would miss the next one,
    so it is the default; what may be cached says so itself (the vendored static files, whose
    Cache-Control WhiteNoise sets). A view setting its own header (never_cache, an export's
    no-store) keeps it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not response.has_header("Cache-Control"):
            patch_cache_control(response, no_store=True, private=True)
        return response


def client_ip(request) -> str | None:
    """The client's IP address.

    X-Forwarded-For is trusted only with MM_BEHIND_PROXY=true, and then only its last hop (the
    one our proxy appended), because anything before it was written by the client.
    """
    if settings.USE_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-1][:45]
    return (request.META.get("REMOTE_ADDR") or None) and request.META["REMOTE_ADDR"][:45]
