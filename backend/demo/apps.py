from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo data for `make run`. Like backend/schema.py it composes every app, so it may import any of them;
    no app may import it."""

    name = "backend.demo"
    label = "demo"
