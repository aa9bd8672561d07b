"""Who looks after whom: assignment by operations, by branch, round-robin with capacity; reassignment (the
conversation and its history stay, the customer is told) and a customer's request for another manager."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F

from backend.chat import services as chat_services
from backend.core import clock
from backend.core.errors import NotFound
from backend.notifications.services import notify

from ..models import Assignment, CustomerRecord, ManagerProfile
from ._base import ManagerFull, NoManagerAvailable, User, active_assignment, clean_text, record_of

Method = Assignment.Method


def _load_of(manager_id: int) -> int:
    return Assignment.objects.filter(manager_id=manager_id, ended_at__isnull=True).count()


def _pick_manager(*, branch: str | None, exclude_id: int | None) -> ManagerProfile:
    """Round-robin among accepting managers with room: the one assigned longest ago (never first), locked."""
    candidates = (ManagerProfile.objects.select_for_update()
                  .filter(accepting=True, user__is_active=True, user__role=User.Role.CLIENT_MANAGER)
                  .exclude(user_id=exclude_id)
                  .order_by(F("last_assigned_at").asc(nulls_first=True), "id"))
    if branch is not None:
        candidates = candidates.filter(branch=branch)
    for profile in candidates:
        if _load_of(profile.user_id) < profile.capacity:
            return profile
    raise NoManagerAvailable()


def _manager_profile(manager_id: int) -> ManagerProfile:
    profile = (ManagerProfile.objects.select_for_update()
               .filter(user_id=manager_id, user__is_active=True, user__role=User.Role.CLIENT_MANAGER).first())
    if profile is None:
        raise NotFound(field="managerId")
    return profile


def assign_customer(*, customer_id: int, method: str, manager_id: int | None = None, actor: Any | None = None,
                    reason: str = "", keep_existing: bool = False) -> Assignment:
    """Give a customer a client manager (or a new one). `method`: admin (operations pick `manager_id`), branch
    (round-robin within the customer's branch), round_robin (any branch), customer_request (someone other
    than the current manager). Capacity is checked under the manager's row lock. Assigning the current
    manager again changes nothing; with `keep_existing`, so does assigning a customer who already has one (two
    taps on "My client manager" at once give one assignment, not a reassignment)."""
    if method not in Method.values:
        raise ValueError(f"unknown assignment method {method!r}")
    reason = clean_text(reason, field="reason", max_chars=200, required=False, line=True) if reason else ""
    customer = User.objects.filter(pk=customer_id, is_active=True, role=User.Role.CUSTOMER).first()
    if customer is None:
        raise NotFound(field="customerId")
    with transaction.atomic():
        record = record_of(customer.pk, lock=True)  # serializes every assignment of this customer
        current = active_assignment(customer.pk)
        if current is not None and keep_existing:
            return current
        if method == Method.ADMIN:
            if manager_id is None:
                raise NotFound(field="managerId")
            if current is not None and current.manager_id == manager_id:
                return current
            profile = _manager_profile(manager_id)
            if _load_of(profile.user_id) >= profile.capacity:
                raise ManagerFull(field="managerId")
        elif method == Method.ROUND_ROBIN:
            profile = _pick_manager(branch=None, exclude_id=None)
        else:  # branch, or a customer's request: their branch first, then (a request only) any branch
            exclude_id = current.manager_id if current and method == Method.CUSTOMER_REQUEST else None
            try:
                profile = _pick_manager(branch=record.branch, exclude_id=exclude_id)
            except NoManagerAvailable:
                if method == Method.BRANCH:
                    raise
                profile = _pick_manager(branch=None, exclude_id=exclude_id)
        now = clock.now()
        profile.last_assigned_at = now
        profile.save(update_fields=["last_assigned_at"])
        if current is not None:
            current.ended_at = now
            current.save(update_fields=["ended_at"])
        assignment = Assignment.objects.create(customer=customer, manager=profile.user, method=method,
                                               assigned_by=actor, reason=reason, started_at=now)
        _connect_conversation(record, customer, profile.user, reassigned=current is not None)
    return assignment


def _connect_conversation(record: CustomerRecord, customer: Any, manager: Any, *, reassigned: bool) -> None:
    if record.conversation_id is None:
        conversation = chat_services.open_advisor_conversation(customer_id=customer.pk, manager_id=manager.pk)
        record.conversation = conversation
        record.save(update_fields=["conversation"])
        text = f"{manager.display_name} is your client manager."
        chat_services.post_system_notice(conversation_id=conversation.pk, event="manager_assigned", text=text,
                                         user_id=manager.pk)
    else:
        text = f"Your client manager is now {manager.display_name}. Your conversation history is kept."
        chat_services.hand_over_advisor_conversation(conversation_id=record.conversation_id,
                                                     new_manager_id=manager.pk, text=text)
    notify(recipient_id=customer.pk, kind="message", event="advisors.manager_changed" if reassigned
           else "advisors.manager_assigned", title="Client manager", body=text,
           conversation_id=record.conversation_id, collapse_key=f"advisor-{customer.pk}")


def open_my_client_manager(*, customer: Any) -> CustomerRecord:
    """"My client manager": the customer's advisor conversation, assigning a manager first if they have none
    (their branch's round-robin, else any branch's)."""
    if customer.role != User.Role.CUSTOMER:
        raise NotFound(field="customerId")
    if active_assignment(customer.pk) is None:
        record = record_of(customer.pk)
        try:
            assign_customer(customer_id=customer.pk, method=Method.BRANCH if record.branch else Method.ROUND_ROBIN,
                            keep_existing=True)
        except NoManagerAvailable:
            if not record.branch:
                raise
            assign_customer(customer_id=customer.pk, method=Method.ROUND_ROBIN, keep_existing=True)
    return CustomerRecord.objects.select_related("conversation").get(customer_id=customer.pk)


def request_different_manager(*, customer: Any, reason: str = "") -> Assignment:
    """The customer asks for someone else: the next manager round-robin (their branch first), never the current
    one. The conversation and its history stay."""
    if active_assignment(customer.pk) is None:
        raise NotFound("You have no client manager yet.", field="customerId")
    return assign_customer(customer_id=customer.pk, method=Method.CUSTOMER_REQUEST, reason=reason, actor=customer)
