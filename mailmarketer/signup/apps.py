from django.apps import AppConfig


class SignupConfig(AppConfig):
    name = "mailmarketer.signup"
    label = "signup"
    verbose_name = "Sign-up and unsubscribe"
