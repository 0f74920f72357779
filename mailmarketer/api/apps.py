from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "mailmarketer.api"
    label = "api"
    verbose_name = "API"
