"""The staff's lead pages, under /app/<ws>/leads/ (views_leads.py)."""

from django.urls import path

from . import views_leads as views

urlpatterns = [
    path("", views.leads_home, name="leads-home"),
    path("<int:lead_id>/", views.lead_detail, name="leads-detail"),
    path("<int:lead_id>/update/", views.lead_update, name="leads-update"),
]
