"""The one route table. Each domain's urls.py lists its routes; each view names its permission
(accounts/access.py), and a test walks every pattern to check it."""

from django.urls import include, path

from mailmarketer.api.urls import api

urlpatterns = [
    # First: the tracking edge is most of the requests, and Django tries the patterns in order
    # (after the others it tried ~120 of them per hit).
    path("t/", include("mailmarketer.tracking.urls")),
    path("", include("mailmarketer.web.urls")),
    path("", include("mailmarketer.accounts.urls")),
    path("", include("mailmarketer.audience.urls")),
    path("", include("mailmarketer.signup.urls")),
    path("", include("mailmarketer.campaigns.urls")),
    path("", include("mailmarketer.delivery.urls")),
    path("", include("mailmarketer.tracking.urls_app")),
    path("", include("mailmarketer.tracking.urls_web")),
    path("", include("mailmarketer.campaigns.urls_public")),
    path("", include("mailmarketer.signup.urls_public_forms")),  # last: /f/<ws>/<form>
    path("api/v1/", api.urls),
    path("", include("mailmarketer.campaigns.urls_images")),  # /i/<ws>/<image>
]
