"""Campaign images: the upload (staff) and each image's public address, /i/<workspace>/<file>,
which mail programs fetch without a login (views_images.py)."""

from django.urls import path

from . import views_images

urlpatterns = [
    path(
        "app/<slug:ws>/campaigns/images/", views_images.image_upload, name="campaign-image-upload"
    ),
    path("i/<slug:ws>/<str:name>", views_images.image_file, name="campaign-image"),
]
