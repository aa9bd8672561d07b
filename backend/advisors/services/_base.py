"""Errors and small helpers shared by the advisors use cases."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from backend.core import text as text_rules
from backend.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed

from ..models import Assignment, CustomerRecord

User = get_user_model()


class NotAClientManager(PermissionDenied):
    code = "NOT_A_CLIENT_MANAGER"
    default_message = "Only client managers may do that."


class NoManagerAvailable(Conflict):
    code = "NO_MANAGER_AVAILABLE"
    default_message = "No client manager can take this customer now."


class ManagerFull(Conflict):
    code = "MANAGER_AT_CAPACITY"
    default_message = "That client manager has no capacity left."


def require_manager(user: Any) -> None:
    if not getattr(user, "is_client_manager", False):
        raise NotAClientManager()


def require_manager_or_operations(user: Any) -> None:
    if not (getattr(user, "is_client_manager", False) or getattr(user, "is_staff", False)):
        raise NotAClientManager("Only client managers and operations staff may do that.")


def clean_text(value: object, *, field: str, max_chars: int, required: bool = True, line: bool = False) -> str:
    """A user-typed text: storable, within length, not blank when required (a title: one clean line)."""
    if not isinstance(value, str) or text_rules.storage_problem(value) or len(value) > max_chars \
            or (required and text_rules.is_blank(value)) or (line and not text_rules.is_clean_line(value)):
        raise ValidationFailed(f"Enter 1 to {max_chars} characters.", code="INVALID_TEXT", field=field)
    return value.strip() if line else value


def record_of(customer_id: int, *, lock: bool = False) -> CustomerRecord:
    rows = CustomerRecord.objects.select_for_update() if lock else CustomerRecord.objects
    record, _ = rows.get_or_create(customer_id=customer_id)
    return record


def active_assignment(customer_id: int) -> Assignment | None:
    return Assignment.objects.filter(customer_id=customer_id, ended_at__isnull=True).first()


def my_customer_record(manager: Any, customer_id: int) -> CustomerRecord:
    """The record of a customer currently assigned to this manager; anyone else's is NOT_FOUND."""
    require_manager(manager)
    record = (CustomerRecord.objects.filter(customer_id=customer_id).first()
              if Assignment.objects.filter(customer_id=customer_id, manager=manager, ended_at__isnull=True).exists()
              else None)
    if record is None or record.conversation_id is None:
        raise NotFound(field="customerId")
    return record
