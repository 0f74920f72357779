"""Image upload for campaigns (campaigns.manage) and the public address of each image (see
images.py for what is accepted and how files are kept).

The upload answers the editor's script with JSON (the URL, and the Markdown and HTML image tags
to insert); without the script the form posts normally and the page comes back with the URL in
a message.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import redirect
from django.utils.html import escape
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import public_view, workspace_view
from mailmarketer.accounts.actions import ActionError
from mailmarketer.accounts.actors import Actor

from . import images
from .forms import ImageForm
from .views_campaigns import status_for

IMAGE_CSP = "default-src 'none'; sandbox; frame-ancestors 'none'"
YEAR = 365 * 24 * 3600


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _back(request):
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect("campaigns-home", ws=request.workspace.slug)


@workspace_view(p.CAMPAIGNS_MANAGE)
@require_POST
def image_upload(request):
    form = ImageForm(request.POST, request.FILES)
    try:
        if not form.is_valid():
            raise ActionError(form.problem(), code="invalid_image", field="image")
        upload = form.cleaned_data["image"]
        image = images.do_upload_image(
            request.workspace,
            filename=upload.name or "",
            data=upload.read(),
            actor=Actor.from_request(request),
        )
    except ActionError as exc:
        if _wants_json(request):
            return JsonResponse({"error": str(exc)}, status=status_for(exc))
        messages.error(request, f"The image was not uploaded: {exc}")
        return _back(request)
    url = images.image_url(image)
    alt = image.filename.rsplit(".", 1)[0]
    if _wants_json(request):
        return JsonResponse(
            {
                "url": url,
                "filename": image.filename,
                "markdown": f"![{alt.replace(']', '')}]({url})",
                "html": f'<img src="{url}" alt="{escape(alt)}">',
            }
        )
    messages.success(request, f"Uploaded {image.filename}: {url}")
    return _back(request)


@public_view
@require_safe
def image_file(request, ws: str, name: str):
    image = images.get_image(ws, name)
    if image is None:
        raise Http404("No such image")
    path = images.image_path(image.workspace_id, image.sha256, image.ext)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise Http404("No such image") from None
    response = FileResponse(handle, content_type=image.content_type)
    response["Content-Length"] = str(image.size)
    response["Cache-Control"] = f"public, max-age={YEAR}, immutable"
    response["Content-Security-Policy"] = IMAGE_CSP
    response["X-Content-Type-Options"] = "nosniff"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response
