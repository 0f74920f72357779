from django.urls import path

from . import views_auth

urlpatterns = [
    path("", views_auth.root, name="root"),
    path("login/", views_auth.login_view, name="login"),
    path("logout/", views_auth.logout_view, name="logout"),
    path("account/", views_auth.account, name="account"),
]
