from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "backend.notifications"
    label = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from django.conf import settings

        from . import push, schedule, security

        security.connect()  # accounts' security events become notices
        push.announce()  # "pushes go to FCM" or "pushes are only logged": operators see which at start-up
        schedule.register_periodic(
            "notifications.sweep_pushes", "notifications.sweep_pushes", seconds=settings.PUSH["SWEEP_EVERY_SECONDS"]
        )
