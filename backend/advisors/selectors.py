"""Reads of the advisors app, scoped: a manager sees only their own customers and conversations; a customer
sees only their own manager; internal notes and tiers are never readable by customers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from backend.chat import selectors as chat_selectors

from .models import (
    Assignment,
    Broadcast,
    BroadcastDelivery,
    CustomerNote,
    CustomerRecord,
    ManagerProfile,
    Product,
    QuickReply,
    ServiceAccount,
    Subscription,
)


def branches_of(user_ids: Sequence[int]) -> dict[int, str]:
    """The branch of each client manager among `user_ids` (core.staff_directory's provider)."""
    return dict(ManagerProfile.objects.filter(user_id__in=list(user_ids)).values_list("user_id", "branch"))


def my_assignment(customer: Any) -> Assignment | None:
    """The customer's current client manager (with the user row)."""
    return Assignment.objects.select_related("manager").filter(customer=customer, ended_at__isnull=True).first()


def customers_of(manager: Any) -> QuerySet:
    """The users a manager may look up: their currently assigned customers (for core.ids.fetch_scoped)."""
    mine = Assignment.objects.filter(manager_id=manager.pk, ended_at__isnull=True).values("customer_id")
    return get_user_model().objects.filter(pk__in=mine)


@dataclass
class ManagedCustomer:
    customer: Any
    record: CustomerRecord
    assigned_at: dt.datetime
    unread: int
    last_contact_at: dt.datetime | None
    waiting_since: dt.datetime | None


def my_customers(manager: Any) -> list[ManagedCustomer]:
    """My customers, most recent contact first, with unread counts, last contact, tier and tags: three queries
    however many customers."""
    if not getattr(manager, "is_client_manager", False):
        return []
    assignments = list(Assignment.objects.filter(manager=manager, ended_at__isnull=True).select_related("customer"))
    records = {r.customer_id: r for r in CustomerRecord.objects.filter(customer_id__in=[a.customer_id
                                                                                       for a in assignments])}
    seats = {s.conversation_id: s for s in chat_selectors.advisor_seats_of(manager.pk)}
    rows = []
    for assignment in assignments:
        record = records.get(assignment.customer_id) or CustomerRecord(customer_id=assignment.customer_id)
        seat = seats.get(record.conversation_id)
        last = max((t for t in (seat.customer_last_at, seat.manager_last_at) if t), default=None) if seat else None
        rows.append(ManagedCustomer(
            customer=assignment.customer, record=record, assigned_at=assignment.started_at,
            unread=chat_selectors.unread_count(seat) if seat else 0, last_contact_at=last,
            waiting_since=seat.waiting_since if seat else None))
    floor = dt.datetime.min.replace(tzinfo=dt.UTC)
    rows.sort(key=lambda row: (row.last_contact_at or floor, row.customer.pk), reverse=True)
    return rows


@dataclass
class WaitingConversation:
    customer: Any
    record: CustomerRecord
    conversation_id: int
    waiting_since: dt.datetime
    unread: int


def waiting_queue(manager: Any) -> list[WaitingConversation]:
    """Conversations waiting for my reply (the customer wrote after my last message), longest wait first. Only
    conversations of customers assigned to me now: two queries however long the queue."""
    if not getattr(manager, "is_client_manager", False):
        return []
    seats = list(chat_selectors.waiting_advisor_seats(manager.pk))
    records = {r.conversation_id: r for r in CustomerRecord.objects.select_related("customer")
               .filter(conversation_id__in=[s.conversation_id for s in seats],
                       customer_id__in=Assignment.objects.filter(manager=manager, ended_at__isnull=True)
                       .values("customer_id"))}
    return [WaitingConversation(customer=records[s.conversation_id].customer, record=records[s.conversation_id],
                                conversation_id=s.conversation_id, waiting_since=s.waiting_since,
                                unread=chat_selectors.unread_count(s))
            for s in seats if s.conversation_id in records]


def notes_on(manager: Any, customer: Any) -> QuerySet[CustomerNote]:
    """Internal notes on one of my customers (the caller resolved `customer` through `customers_of`)."""
    return CustomerNote.objects.filter(customer=customer).select_related("author")


def quick_replies_of(manager: Any) -> QuerySet[QuickReply]:
    return QuickReply.objects.filter(manager_id=manager.pk)


def active_products() -> QuerySet[Product]:
    return Product.objects.filter(active=True)


def service_accounts_for(user: Any) -> list[tuple[ServiceAccount, Subscription | None]]:
    """Every service account with the user's subscription to it (None: never sent anything yet)."""
    subs = {s.service_account_id: s for s in Subscription.objects.filter(user_id=user.pk)}
    return [(a, subs.get(a.pk)) for a in ServiceAccount.objects.select_related("user")]


def broadcasts_of(user: Any) -> QuerySet[Broadcast]:
    """Broadcasts the caller may report on — their own; operations staff see all — each with `read_total`
    (deliveries whose recipient read the message) computed in the same query."""
    rows = Broadcast.objects.select_related("service_account__user").annotate(read_total=_read_total())
    return rows if getattr(user, "is_staff", False) else rows.filter(sender_id=user.pk)


def _read_total():
    reads = (BroadcastDelivery.objects.filter(broadcast_id=OuterRef("pk"))
             .filter(chat_selectors.has_read_flag(conversation_ref=OuterRef("conversation_id"),
                                                  user_ref=OuterRef("user_id"), seq_ref=OuterRef("seq")))
             .values("broadcast_id").annotate(n=Count("id")).values("n"))
    return Coalesce(Subquery(reads), Value(0))


def read_count(broadcast: Broadcast) -> int:
    """Deliveries the recipient has read (their read marker in the service conversation reached the message)."""
    total = getattr(broadcast, "read_total", None)
    if total is None:
        total = Broadcast.objects.filter(pk=broadcast.pk).annotate(read_total=_read_total()) \
            .values_list("read_total", flat=True).get()
    return total


def tiers_of(user_ids: Sequence[int]) -> dict[int, str]:
    """Customer tiers for core.customer_tiers (campaigns limits offers by tier without importing advisors).
    A customer without a record yet reads as ordinary, the record's default until the nightly computation."""
    known = dict(CustomerRecord.objects.filter(customer_id__in=list(user_ids)).values_list("customer_id", "tier"))
    return {uid: known.get(uid, CustomerRecord.Tier.ORDINARY) for uid in user_ids}
