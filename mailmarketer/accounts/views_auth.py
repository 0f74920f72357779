from django.shortcuts import redirect

from .access import public_view


@public_view
def root(request):
    return redirect("app-home")


@public_view
def login_view(request):
    return redirect("app-home")
