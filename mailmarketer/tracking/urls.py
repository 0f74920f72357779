"""The `/t/` edge: public, cookieless, never an error page (see the package docstring)."""

urlpatterns: list = []
