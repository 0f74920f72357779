from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "mailmarketer.web"
    label = "web"
    verbose_name = "Web"
