from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "backend.payments"
    label = "payments"
    verbose_name = "Payments in chat"

    def ready(self) -> None:
        from backend.core import platform_packets

        from . import tasks  # noqa: F401  (registers the periodic jobs)
        from .services.red_packets import PLATFORM_PACKETS

        # Apps that may not import payments (referrals' welcome bonus) send platform red packets through core.
        platform_packets.register(PLATFORM_PACKETS)
