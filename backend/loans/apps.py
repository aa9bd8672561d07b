from django.apps import AppConfig


class LoansConfig(AppConfig):
    name = "backend.loans"
    label = "loans"
    verbose_name = "Acquaintance lending"

    def ready(self) -> None:
        from . import tasks  # noqa: F401  (registers the periodic scans)
