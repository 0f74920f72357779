from django.contrib.auth import logout
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from .access import account_view, public_view


@public_view
def root(request):
    return redirect("app-home")


@public_view
def login_view(request):
    return redirect("app-home")


@public_view
@require_POST
def logout_view(request):
    logout(request)
    return redirect("login")


@account_view
def account(request):
    return render(request, "web/base.html")
