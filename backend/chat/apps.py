from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "backend.chat"
    label = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        from backend.notifications import schedule

        from . import limits

        schedule.register_periodic("chat.push_missed_messages", "chat.push_missed_messages",
                                   seconds=limits.get("MISSED_PUSH_EVERY_SECONDS"))
