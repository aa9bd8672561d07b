from django.apps import AppConfig


class WalletConfig(AppConfig):
    name = "backend.wallet"
    label = "wallet"
    verbose_name = "Wallet"

    def ready(self) -> None:
        from django.conf import settings

        from . import signals

        signals.connect()

        from .gateway import guard_sandbox_at_start_up

        guard_sandbox_at_start_up()

        from backend.core import customer_metrics

        from . import selectors

        # Balances feed the advisors app's customer tiers without advisors importing wallet.
        customer_metrics.register_metric(customer_metrics.BALANCE_FEN, selectors.wallet_balances)

        schedule = settings.CELERY_BEAT_SCHEDULE
        schedule.setdefault("wallet.void_expired_holds", {"task": "wallet.void_expired_holds", "schedule": 60.0})
        schedule.setdefault(
            "wallet.recheck_pending_bank_operations",
            {"task": "wallet.recheck_pending_bank_operations", "schedule": 60.0},
        )
