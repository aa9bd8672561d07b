from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "backend.campaigns"
    label = "campaigns"
    verbose_name = "Campaigns"

    def ready(self) -> None:
        from backend.core.activity_hooks import register_activity_listener

        from . import tasks  # noqa: F401  (registers the periodic jobs)
        from .services import on_reported_activity

        register_activity_listener(on_reported_activity)
