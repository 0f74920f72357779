from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "mailmarketer.accounts"
    label = "accounts"
    verbose_name = "Accounts"
