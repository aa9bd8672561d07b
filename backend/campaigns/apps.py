from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "backend.campaigns"
    label = "campaigns"
    verbose_name = "Campaigns"

    def ready(self) -> None:
        from . import tasks  # noqa: F401  (registers the periodic jobs)
