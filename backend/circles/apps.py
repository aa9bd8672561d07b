from django.apps import AppConfig


class CirclesConfig(AppConfig):
    name = "backend.circles"
    label = "circles"
    verbose_name = "Circles"

    def ready(self) -> None:
        from backend.core import reach
        from backend.notifications import schedule

        from . import selectors

        # Chat asks core.reach who may open a direct chat / add whom to a group / whose messages are delivered.
        reach.register_contact_policy(selectors.may_contact, blocked_since_fn=selectors.blocked_since)
        reach.register_send_policy(selectors.may_send_in_circle_chat)  # admins' mute holds in the circle chat
        schedule.register_periodic("circles.send_event_reminders", "circles.send_event_reminders", seconds=300)
