"""GraphQL for client managers: the customer's "My client manager", the manager's desk (customers, waiting
queue, notes, quick replies, product cards, office hours), service accounts and broadcasts. Thin: services
decide, selectors scope — a manager's customer id is resolved only among their own customers (anyone else's
is NOT_FOUND, exactly like a missing id), and notes and tiers are on manager-only types."""

from __future__ import annotations

import graphene

from backend.accounts import ids as account_ids
from backend.accounts.schema import User
from backend.chat import selectors as chat_selectors
from backend.chat.events import CONVERSATION
from backend.chat.schema import Conversation, Message
from backend.core import nodes, pagination
from backend.core.graphql import BaseMutation, register_app_errors, require_user
from backend.core.ids import decode_id, encode_id, fetch_scoped

from . import selectors, services
from .models import Broadcast as BroadcastModel
from .models import CustomerNote as CustomerNoteModel
from .models import CustomerRecord as CustomerRecordModel
from .models import Product as ProductModel
from .models import QuickReply as QuickReplyModel
from .models import ServiceAccount as ServiceAccountModel
from .services.desk import PRODUCT

AdvisorError = register_app_errors("Advisor", "backend.advisors", include=("backend.chat",))  # code: AdvisorErrorCode


def _plain(value: object) -> object:
    return getattr(value, "value", value)


def _conversation_gid(pk: int | None) -> str | None:
    return encode_id(CONVERSATION, pk) if pk else None


def _my_customer(info, customer_id: object):
    """One of the caller's customers by User id; any other id is NOT_FOUND."""
    return fetch_scoped(customer_id, type_name="User", scoped=selectors.customers_of(require_user(info)),
                        field="customerId")


# The models' choices, so the enums cannot drift from what is stored.
CustomerTier = graphene.Enum.from_enum(
    CustomerRecordModel.Tier, name="CustomerTier", description="Computed nightly (docs/architecture.md).")
ServiceAccountCategory = graphene.Enum.from_enum(
    ServiceAccountModel.Category, name="ServiceAccountCategory",
    description="SECURITY and SERVICE accounts cannot be unsubscribed; MARKETING ones can.")
BroadcastTarget = graphene.Enum.from_enum(
    BroadcastModel.Target, name="BroadcastTarget", description="Who a broadcast is for.")


class Product(graphene.ObjectType):
    class Meta:
        interfaces = (graphene.relay.Node,)

    name = graphene.String(required=True)
    product_type = graphene.String(required=True)
    risk_level = graphene.String(required=True, description="R1 (lowest) to R5.")
    expected_yield_bps = graphene.Int(required=True, description="Expected annual yield, basis points.")
    min_amount = graphene.Float(required=True, description="Minimum purchase, in fen.")
    detail_url = graphene.String(required=True)

    resolve_product_type = staticmethod(lambda root, info: _plain(root.kind))
    resolve_risk_level = staticmethod(lambda root, info: f"R{root.risk_level}")


nodes.register(Product, model=ProductModel, scoped=lambda user: selectors.active_products())


class MyClientManager(graphene.ObjectType):
    """The customer's view: who their manager is and the conversation to open. No tier, tags or notes."""

    manager = graphene.Field(User, required=True)
    conversation = graphene.Field(Conversation, required=True)
    since = graphene.DateTime(required=True)


class CustomerNote(graphene.ObjectType):
    class Meta:
        interfaces = (graphene.relay.Node,)

    body = graphene.String(required=True)
    author = graphene.Field(User)
    created_at = graphene.DateTime(required=True)


def _notes_scope(user):
    return CustomerNoteModel.objects.filter(customer_id__in=selectors.customers_of(user).values("pk"))


nodes.register(CustomerNote, model=CustomerNoteModel, scoped=_notes_scope)


class ManagedCustomer(graphene.ObjectType):
    """A customer as their manager sees them (manager-only: never rendered to a customer)."""

    customer = graphene.Field(User, required=True)
    conversation_id = graphene.ID()
    tier = graphene.Field(CustomerTier, required=True)
    tags = graphene.List(graphene.NonNull(graphene.String), required=True)
    unread_count = graphene.Int(required=True)
    last_contact_at = graphene.DateTime()
    waiting_since = graphene.DateTime()
    assigned_at = graphene.DateTime(required=True)

    resolve_tier = staticmethod(lambda root, info: _plain(root.record.tier))
    resolve_tags = staticmethod(lambda root, info: list(root.record.tags or []))
    resolve_unread_count = staticmethod(lambda root, info: root.unread)
    resolve_conversation_id = staticmethod(lambda root, info: _conversation_gid(root.record.conversation_id))


class WaitingConversation(graphene.ObjectType):
    customer = graphene.Field(User, required=True)
    conversation_id = graphene.ID(required=True)
    tier = graphene.Field(CustomerTier, required=True)
    waiting_since = graphene.DateTime(required=True)
    unread_count = graphene.Int(required=True)

    resolve_tier = staticmethod(lambda root, info: _plain(root.record.tier))
    resolve_unread_count = staticmethod(lambda root, info: root.unread)
    resolve_conversation_id = staticmethod(lambda root, info: _conversation_gid(root.conversation_id))


class QuickReply(graphene.ObjectType):
    class Meta:
        interfaces = (graphene.relay.Node,)

    title = graphene.String(required=True)
    text = graphene.String(required=True)


nodes.register(QuickReply, model=QuickReplyModel, scoped=selectors.quick_replies_of)


class ServiceAccount(graphene.ObjectType):
    class Meta:
        interfaces = (graphene.relay.Node,)

    name = graphene.String(required=True)
    sender = graphene.Field(User, required=True, description="The verified user its messages come from.")
    category = graphene.Field(ServiceAccountCategory, required=True)
    description = graphene.String(required=True)
    may_unsubscribe = graphene.Boolean(required=True, description="Only marketing accounts.")
    subscribed = graphene.Boolean(required=True)
    conversation_id = graphene.ID()

    resolve_name = staticmethod(lambda root, info: root.user.display_name)
    resolve_sender = staticmethod(lambda root, info: root.user)
    resolve_category = staticmethod(lambda root, info: _plain(root.category))

    @staticmethod
    def resolve_subscribed(root, info):
        sub = getattr(root, "_subscription", None)
        return sub is not None and sub.active

    @staticmethod
    def resolve_conversation_id(root, info):
        sub = getattr(root, "_subscription", None)
        return _conversation_gid(sub.conversation_id) if sub else None


nodes.register(ServiceAccount, model=ServiceAccountModel, scoped=lambda user: ServiceAccountModel.objects.all())


def _with_subscription(account, subscription):
    account._subscription = subscription
    return account


class Broadcast(graphene.ObjectType):
    class Meta:
        interfaces = (graphene.relay.Node,)

    service_account_name = graphene.String(required=True)
    text = graphene.String(required=True)
    target = graphene.Field(BroadcastTarget, required=True)
    status = graphene.String(required=True)
    audience_count = graphene.Int(required=True)
    delivered_count = graphene.Int(required=True)
    read_count = graphene.Int(required=True)
    capped_count = graphene.Int(required=True, description="Skipped by the per-user frequency cap.")
    unsubscribed_count = graphene.Int(required=True)
    created_at = graphene.DateTime(required=True)
    sent_at = graphene.DateTime()

    resolve_service_account_name = staticmethod(lambda root, info: root.service_account.user.display_name)
    resolve_target = staticmethod(lambda root, info: _plain(root.target))
    resolve_status = staticmethod(lambda root, info: _plain(root.status))
    resolve_read_count = staticmethod(lambda root, info: selectors.read_count(root))


nodes.register(Broadcast, model=BroadcastModel, scoped=selectors.broadcasts_of)


ManagedCustomerConnection = pagination.connection_type(ManagedCustomer, name="ManagedCustomer")
WaitingConversationConnection = pagination.connection_type(WaitingConversation, name="WaitingConversation")
BroadcastConnection = pagination.connection_type(Broadcast, name="Broadcast")


def _page(connection, rows, *, first, after, kind: str):
    """One page of an ordered list by position (`<kind>:<offset>` cursors; the lists are short: a manager's
    customers are bounded by their capacity)."""
    size = pagination.page_size(first)
    start = pagination.decode_int_cursor(after, kind=kind) or 0
    window = list(rows[start:start + size + 1])
    edges = [connection.Edge(cursor=pagination.encode_cursor(kind, start + i + 1), node=row)
             for i, row in enumerate(window[:size])]
    return connection(edges=edges, page_info=pagination.page_info(edges, has_next=len(window) > size,
                                                                  has_previous=start > 0))


class Query(graphene.ObjectType):
    my_client_manager = graphene.Field(MyClientManager, description="Null until a manager is assigned (see "
                                       "openMyClientManager).")
    my_customers = graphene.Field(ManagedCustomerConnection, required=True, first=graphene.Int(),
                                  after=graphene.String(),
                                  description="Client managers: my customers, latest contact first.")
    waiting_queue = graphene.Field(WaitingConversationConnection, required=True, first=graphene.Int(),
                                   after=graphene.String(),
                                   description="Client managers: conversations waiting for my reply, longest first.")
    customer_notes = graphene.List(graphene.NonNull(CustomerNote), required=True,
                                   customer_id=graphene.ID(required=True))
    quick_replies = graphene.List(graphene.NonNull(QuickReply), required=True)
    products = graphene.List(graphene.NonNull(Product), required=True)
    service_accounts = graphene.List(graphene.NonNull(ServiceAccount), required=True)
    my_broadcasts = graphene.Field(BroadcastConnection, required=True, first=graphene.Int(), after=graphene.String(),
                                   description="Broadcasts I sent (operations staff: all), newest first.")

    @staticmethod
    def resolve_my_client_manager(root, info):
        user = require_user(info)
        assignment = selectors.my_assignment(user)
        record = getattr(user, "advisor_record", None) if assignment else None
        seat = chat_selectors.seat_of(user.pk, record.conversation_id) if record and record.conversation_id else None
        if seat is None:
            return None
        return MyClientManager(manager=assignment.manager, conversation=seat, since=assignment.started_at)

    @staticmethod
    def resolve_my_customers(root, info, first=None, after=None):
        return _page(ManagedCustomerConnection, selectors.my_customers(require_user(info)), first=first,
                     after=after, kind="customer")

    @staticmethod
    def resolve_waiting_queue(root, info, first=None, after=None):
        return _page(WaitingConversationConnection, selectors.waiting_queue(require_user(info)), first=first,
                     after=after, kind="waiting")

    @staticmethod
    def resolve_customer_notes(root, info, customer_id):
        manager = require_user(info)
        customer = _my_customer(info, customer_id)
        return list(selectors.notes_on(manager, customer))

    @staticmethod
    def resolve_quick_replies(root, info):
        return list(selectors.quick_replies_of(require_user(info)))

    @staticmethod
    def resolve_products(root, info):
        require_user(info)
        return list(selectors.active_products())

    @staticmethod
    def resolve_service_accounts(root, info):
        return [_with_subscription(a, s) for a, s in selectors.service_accounts_for(require_user(info))]

    @staticmethod
    def resolve_my_broadcasts(root, info, first=None, after=None):
        return _page(BroadcastConnection, selectors.broadcasts_of(require_user(info)), first=first, after=after,
                     kind="broadcast")


class ClientManagerPayload:
    my_client_manager = graphene.Field(MyClientManager)


def _my_client_manager_of(customer) -> MyClientManager:
    record = services.open_my_client_manager(customer=customer)
    assignment = selectors.my_assignment(customer)
    return MyClientManager(manager=assignment.manager, conversation=chat_selectors.seat_of(customer.pk,
                           record.conversation_id), since=assignment.started_at)


class OpenMyClientManager(ClientManagerPayload, BaseMutation):
    """My client manager: the advisor conversation, assigning a manager first when I have none."""

    @classmethod
    def perform(cls, root, info):
        return {"my_client_manager": _my_client_manager_of(require_user(info))}


class RequestDifferentManager(ClientManagerPayload, BaseMutation):
    """Ask for another client manager. The conversation and its history stay."""

    class Arguments:
        reason = graphene.String()

    @classmethod
    def perform(cls, root, info, reason=""):
        customer = require_user(info)
        services.request_different_manager(customer=customer, reason=reason or "")
        return {"my_client_manager": _my_client_manager_of(customer)}


class AddCustomerNote(BaseMutation):
    """Client managers: an internal note on one of my customers (customers never see notes)."""

    class Arguments:
        customer_id = graphene.ID(required=True)
        body = graphene.String(required=True)

    note = graphene.Field(CustomerNote)

    @classmethod
    def perform(cls, root, info, customer_id, body):
        customer = _my_customer(info, customer_id)
        return {"note": services.add_note(manager=require_user(info), customer_id=customer.pk, body=body)}


class SetCustomerTags(BaseMutation):
    """Client managers: my labels for one of my customers (replaces them; managers only ever see them)."""

    class Arguments:
        customer_id = graphene.ID(required=True)
        tags = graphene.List(graphene.NonNull(graphene.String), required=True)

    tags = graphene.List(graphene.NonNull(graphene.String))

    @classmethod
    def perform(cls, root, info, customer_id, tags):
        customer = _my_customer(info, customer_id)
        return {"tags": services.set_tags(manager=require_user(info), customer_id=customer.pk, tags=tags).tags}


class CreateQuickReply(BaseMutation):
    class Arguments:
        title = graphene.String(required=True)
        text = graphene.String(required=True)

    quick_reply = graphene.Field(QuickReply)

    @classmethod
    def perform(cls, root, info, title, text):
        return {"quick_reply": services.create_quick_reply(manager=require_user(info), title=title, text=text)}


def _quick_reply(info, quick_reply_id):
    return fetch_scoped(quick_reply_id, type_name="QuickReply", scoped=selectors.quick_replies_of(require_user(info)),
                        field="quickReplyId")


class DeleteQuickReply(BaseMutation):
    class Arguments:
        quick_reply_id = graphene.ID(required=True)

    ok = graphene.Boolean()

    @classmethod
    def perform(cls, root, info, quick_reply_id):
        services.delete_quick_reply(manager=require_user(info), quick_reply=_quick_reply(info, quick_reply_id))
        return {"ok": True}


class SentMessagePayload:
    message = graphene.Field(Message)
    duplicate = graphene.Boolean()


class SendQuickReply(SentMessagePayload, BaseMutation):
    class Arguments:
        customer_id = graphene.ID(required=True)
        quick_reply_id = graphene.ID(required=True)
        client_msg_id = graphene.String(required=True)

    @classmethod
    def perform(cls, root, info, customer_id, quick_reply_id, client_msg_id):
        customer = _my_customer(info, customer_id)
        result = services.send_quick_reply(manager=require_user(info), customer_id=customer.pk,
                                           quick_reply=_quick_reply(info, quick_reply_id), client_msg_id=client_msg_id)
        return {"message": result.message, "duplicate": not result.created}


def _product(product_id):
    return fetch_scoped(product_id, type_name=PRODUCT, scoped=selectors.active_products(), field="productId")


class SendProductCard(SentMessagePayload, BaseMutation):
    """Client managers: a product card from the catalog into one of my customers' conversations."""

    class Arguments:
        customer_id = graphene.ID(required=True)
        product_id = graphene.ID(required=True)
        client_msg_id = graphene.String(required=True)

    @classmethod
    def perform(cls, root, info, customer_id, product_id, client_msg_id):
        customer = _my_customer(info, customer_id)
        result = services.send_product_card(manager=require_user(info), customer_id=customer.pk,
                                            product=_product(product_id), client_msg_id=client_msg_id)
        return {"message": result.message, "duplicate": not result.created}


class ShareProduct(SentMessagePayload, BaseMutation):
    """Pass a product card on into a conversation I am in (the share is recorded for referrals)."""

    class Arguments:
        product_id = graphene.ID(required=True)
        conversation_id = graphene.ID(required=True)
        client_msg_id = graphene.String(required=True)

    @classmethod
    def perform(cls, root, info, product_id, conversation_id, client_msg_id):
        result = services.share_product(
            user=require_user(info), product=_product(product_id), client_msg_id=client_msg_id,
            conversation_id=decode_id(conversation_id, type_name=CONVERSATION, field="conversationId"))
        return {"message": result.message, "duplicate": not result.created}


class SetOfficeHours(BaseMutation):
    """Client managers: when I answer. Outside these hours customers get one automatic reply per closed window."""

    class Arguments:
        days = graphene.List(graphene.NonNull(graphene.Int), required=True, description="0 = Monday … 6 = Sunday.")
        opens = graphene.Time(required=True)
        closes = graphene.Time(required=True)
        timezone = graphene.String(required=True, description="IANA name, e.g. Asia/Shanghai.")
        away_message = graphene.String()

    ok = graphene.Boolean()

    @classmethod
    def perform(cls, root, info, days, opens, closes, timezone, away_message=""):
        services.set_office_hours(manager=require_user(info), days=days, opens=opens, closes=closes,
                                  timezone=timezone, away_message=away_message or "")
        return {"ok": True}


def _service_account(service_account_id):
    return fetch_scoped(service_account_id, type_name="ServiceAccount",
                        scoped=ServiceAccountModel.objects.select_related("user"), field="serviceAccountId")


class _SubscriptionChange(BaseMutation):
    """Subscribe or unsubscribe (`change` is the service) and render the account with my subscription."""

    class Meta:
        abstract = True

    class Arguments:
        service_account_id = graphene.ID(required=True)

    service_account = graphene.Field(ServiceAccount)
    change = None

    @classmethod
    def perform(cls, root, info, service_account_id):
        user = require_user(info)
        account = _service_account(service_account_id)
        return {"service_account": _with_subscription(account, cls.change(user=user, account=account))}


class SubscribeServiceAccount(_SubscriptionChange):
    change = staticmethod(services.subscribe)


class UnsubscribeServiceAccount(_SubscriptionChange):
    """Marketing accounts only; security and service accounts answer CANNOT_UNSUBSCRIBE."""

    change = staticmethod(services.unsubscribe)


class SendBroadcast(BaseMutation):
    """Client managers (to their own customers) and operations staff: one message to a tier, a circle (by its
    conversation id) or a list of users, from a service account, under the per-user frequency cap."""

    class Arguments:
        service_account_id = graphene.ID(required=True)
        text = graphene.String(required=True)
        target = BroadcastTarget(required=True)
        tier = CustomerTier()
        circle_conversation_id = graphene.ID()
        user_ids = graphene.List(graphene.NonNull(graphene.ID))
        product_id = graphene.ID()

    broadcast = graphene.Field(Broadcast)

    @classmethod
    def perform(cls, root, info, service_account_id, text, target, tier=None, circle_conversation_id=None,
                user_ids=None, product_id=None):
        user = require_user(info)
        circle = (decode_id(circle_conversation_id, type_name=CONVERSATION, field="circleConversationId")
                  if circle_conversation_id else None)
        broadcast = services.create_broadcast(
            sender=user, account=_service_account(service_account_id), text=text, target=_plain(target),
            tier=_plain(tier) or "", circle_conversation_id=circle,
            user_ids=[account_ids.decode_user(u, field="userIds") for u in user_ids or []],
            product=_product(product_id) if product_id else None)
        return {"broadcast": broadcast}


class Mutation(graphene.ObjectType):
    open_my_client_manager = OpenMyClientManager.Field()
    request_different_manager = RequestDifferentManager.Field()
    add_customer_note = AddCustomerNote.Field()
    set_customer_tags = SetCustomerTags.Field()
    create_quick_reply = CreateQuickReply.Field()
    delete_quick_reply = DeleteQuickReply.Field()
    send_quick_reply = SendQuickReply.Field()
    send_product_card = SendProductCard.Field()
    share_product = ShareProduct.Field()
    set_office_hours = SetOfficeHours.Field()
    subscribe_service_account = SubscribeServiceAccount.Field()
    unsubscribe_service_account = UnsubscribeServiceAccount.Field()
    send_broadcast = SendBroadcast.Field()
