from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "backend.campaigns"
    label = "campaigns"
    verbose_name = "Campaigns"

    def ready(self) -> None:
        from backend.core.activity_hooks import register_activity_listener, register_reversal_listener

        from . import tasks  # noqa: F401  (registers the periodic jobs)
        from .services import on_reported_activity, on_reported_reversal

        register_activity_listener(on_reported_activity)
        register_reversal_listener(on_reported_reversal)
