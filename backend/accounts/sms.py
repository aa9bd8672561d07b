"""Pluggable SMS senders. Pick one with settings.QUANZI["SMS_SENDER"] (a dotted path)."""

from __future__ import annotations

import logging
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from backend.core.phone import mask_phone

log = logging.getLogger("quanzi.sms")


class SmsSender(Protocol):
    def send(self, phone: str, text: str) -> None: ...


class ConsoleSmsSender:
    """Development sender: prints the message (with the code) to the server's console."""

    def send(self, phone: str, text: str) -> None:
        print(f"[sms to {mask_phone(phone)}] {text}", flush=True)


class OutboxSmsSender:
    """Keeps sent messages in memory, like Django's mail outbox; for tests and demos on one process."""

    outbox: list[tuple[str, str]] = []

    def send(self, phone: str, text: str) -> None:
        OutboxSmsSender.outbox.append((phone, text))


def get_sms_sender() -> SmsSender:
    return import_string(settings.QUANZI["SMS_SENDER"])()
