from django.urls import path

from . import views_auth

urlpatterns = [
    path("", views_auth.root, name="root"),
    path("login/", views_auth.login_view, name="login"),
]
