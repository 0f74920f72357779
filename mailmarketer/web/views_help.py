"""The help pages (help.py) and the favicon at the address browsers ask for by themselves."""

from __future__ import annotations

from pathlib import Path

from django.http import FileResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from mailmarketer.accounts.access import account_view, public_view

from . import help

FAVICON = Path(__file__).resolve().parent / "static" / "web" / "favicon.svg"
MISSING = (
    "The help pages are not installed with this copy of Mail Marketer: the directory they are "
    "read from (MM_DOCS_DIR) does not exist."
)


@account_view
@require_GET
def help_index(request):
    try:
        pages = help.index()
    except help.HelpMissing:
        return render(request, "web/help_missing.html", {"message": MISSING}, status=404)
    return render(request, "web/help_index.html", {"pages": pages})


@account_view
@require_GET
def help_page(request, page: str):
    try:
        found = help.get_page(page)
    except help.HelpMissing:
        return render(request, "web/help_missing.html", {"message": MISSING}, status=404)
    if found is None:
        message = f"There is no help page called “{page[:64]}”."
        return render(request, "web/help_missing.html", {"message": message}, status=404)
    return render(request, "web/help_page.html", {"page": found})


@public_view
@require_GET
@cache_control(max_age=86400, public=True)
def favicon(request):
    """/favicon.ico, which browsers fetch without being told: the same SVG every page links."""
    return FileResponse(FAVICON.open("rb"), content_type="image/svg+xml")
