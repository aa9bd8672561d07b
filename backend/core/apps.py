from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "backend.core"
    label = "core"

    def ready(self) -> None:
        from . import startup

        startup.announce()  # one line per component (the push backend's comes from notifications)
