from django.apps import AppConfig


class WalletConfig(AppConfig):
    name = "backend.wallet"
    label = "wallet"
    verbose_name = "Wallet"
