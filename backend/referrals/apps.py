from django.apps import AppConfig


class ReferralsConfig(AppConfig):
    name = "backend.referrals"
    label = "referrals"
    verbose_name = "Referrals"

    def ready(self) -> None:
        from . import tasks  # noqa: F401  (registers the periodic jobs)
