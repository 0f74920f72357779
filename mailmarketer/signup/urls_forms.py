"""The staff's form pages, under /app/<ws>/forms/ (views_forms.py)."""

from django.urls import path

from . import views_forms as views
from . import views_leads, views_resources

urlpatterns = [
    path("", views.forms_home, name="forms-home"),
    path("new/", views.form_create, name="forms-create"),
    path("<int:form_id>/", views.form_detail, name="forms-detail"),
    path("<int:form_id>/edit/", views.form_edit, name="forms-edit"),
    path("<int:form_id>/preview/", views.form_preview, name="forms-preview"),
    path("<int:form_id>/delete/", views.form_delete, name="forms-delete"),
    path("welcome/<int:list_id>/", views.welcome_edit, name="forms-welcome"),
    path("<int:form_id>/resource/", views_resources.form_resource, name="forms-resource"),
    path("<int:form_id>/evaluation/", views_leads.form_evaluation, name="forms-evaluation"),
]
