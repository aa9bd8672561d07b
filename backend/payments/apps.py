from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "backend.payments"
    label = "payments"
    verbose_name = "Payments in chat"

    def ready(self) -> None:
        from . import tasks  # noqa: F401  (registers the periodic jobs)
