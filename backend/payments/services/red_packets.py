"""红包 Red packets: send (the total goes to escrow, the split is drawn now), grab (one pre-drawn part each, in
commit order), expire (the rest back to the sender, once).

Locking: a grab locks the packet row first, then (inside the wallet) the escrow and the grabber's wallet,
then (inside chat) the conversation for the card update — always in that order, so grabs queue on the
packet and never deadlock with each other or with the expiry scan.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction

from backend.accounts.models import User
from backend.chat import services as chat_services
from backend.chat.models import Conversation
from backend.core import activity_hooks, clock, platform_packets
from backend.core.errors import Conflict, NotFound, ValidationFailed
from backend.core.ids import encode_id
from backend.core.money import split_equally
from backend.core.text import is_clean_line
from backend.core.values import is_int
from backend.wallet import risk
from backend.wallet import services as wallet
from backend.wallet.models import LedgerAccount
from backend.wallet.money import format_fen

from .. import rules
from ..limits import payments_setting
from ..models import RedPacket, RedPacketGrab
from ._common import (
    WrongConversationKind,
    active_member_ids,
    client_key,
    conversation_of_member,
    count_money_action,
    create_once,
    gid,
    is_member,
    post_card,
    tell,
    update_card,
)

TYPE = "RedPacket"


class TooManyParts(ValidationFailed):
    code = "TOO_MANY_PARTS"
    default_message = "More parts than allowed (or than the conversation has members)."


class TooFewFen(ValidationFailed):
    code = "AMOUNT_BELOW_PARTS"
    default_message = "Each part needs at least 1 fen: the amount must be at least the number of parts."


class PacketClosed(Conflict):
    code = "PACKET_CLOSED"
    default_message = "This red packet has been emptied or has expired."


class AlreadyGrabbed(Conflict):
    code = "ALREADY_GRABBED"
    default_message = "You already opened this red packet."


class CannotGrabOwn(Conflict):
    code = "CANNOT_GRAB_OWN"
    default_message = "In a one-to-one chat the red packet is for the other person."


def card_state(packet: RedPacket) -> dict:
    grabs = list(packet.grabs.order_by("index").values_list("user_id", "amount"))
    state: dict[str, Any] = {
        "status": packet.status, "packet_kind": packet.kind, "total": packet.total, "count": packet.count,
        "grabbed_count": packet.grabbed_count, "grabbed_amount": packet.grabbed_amount,
        "refunded_amount": packet.refunded_amount, "seed_hash": packet.seed_hash,
        "expires_at": packet.expires_at.isoformat(),
        "grabs": [[gid(uid), amount] for uid, amount in grabs[-payments_setting("CARD_LIST_MAX"):]],
    }
    if packet.status != RedPacket.Status.OPEN:
        state["seed"] = packet.seed  # published once the packet closes: anyone can recompute the split
    best = best_luck(packet, grabs)
    if best is not None:
        state["best_luck"] = gid(best)
    return state


def best_luck(packet: RedPacket, grabs: list[tuple[int, int]] | None = None) -> int | None:
    """手气最佳: the largest part (earliest grab on a tie), once every part of a lucky packet is taken."""
    if packet.kind != RedPacket.Kind.LUCKY or packet.status != RedPacket.Status.EMPTY:
        return None
    if grabs is None:
        grabs = list(packet.grabs.order_by("index").values_list("user_id", "amount"))
    return max(grabs, key=lambda g: g[1])[0] if grabs else None  # max keeps the first of equals


def _check_parts(conversation: Conversation, *, total: int, count: object) -> int:
    if not is_int(count) or count < 1:
        raise TooManyParts("The number of parts is a whole number ≥ 1.", code="PARTS_INVALID", field="count")
    members = active_member_ids(conversation.pk)
    if conversation.kind == Conversation.Kind.DIRECT:
        allowed = 1
    elif conversation.kind in (Conversation.Kind.GROUP, Conversation.Kind.CIRCLE):
        allowed = min(len(members), payments_setting("PACKET_MAX_PARTS"))
    else:
        raise WrongConversationKind(field="conversationId")
    if count > allowed:
        raise TooManyParts(f"At most {allowed} parts here.", field="count")
    if total < count:
        raise TooFewFen(field="amount")
    return count


def _greeting(value: object) -> str:
    value = "" if value is None else value
    if not isinstance(value, str) or not is_clean_line(value) \
            or len(value) > payments_setting("GREETING_MAX_CHARS"):
        raise ValidationFailed(f"A greeting is one line of at most {payments_setting('GREETING_MAX_CHARS')} "
                               "characters.", code="GREETING_INVALID", field="greeting")
    return value.strip() or "恭喜发财，大吉大利"


def send_red_packet(*, sender: Any, conversation_id: object, kind: object, amount: object, count: object,
                    idempotency_key: object, greeting: object = "", risk_confirmation: object = None,
                    ) -> tuple[RedPacket, bool]:
    """Send a red packet: the whole amount leaves the sender's wallet now. Returns (packet, replayed).

    In a one-to-one chat the packet is a payment to that person, so it passes the risk check first."""
    key = client_key(idempotency_key)
    return create_once(RedPacket, {"sender": sender, "idempotency_key": key}, lambda: _send(
        sender=sender, conversation_id=conversation_id, kind=kind, amount=amount, count=count, key=key,
        greeting=greeting, risk_confirmation=risk_confirmation))


def _send(*, sender: Any, conversation_id: object, kind: object, amount: object, count: object, key: str,
          greeting: object, risk_confirmation: object) -> RedPacket:
    count_money_action(sender)
    if kind not in RedPacket.Kind.values:
        raise ValidationFailed("A red packet is fixed or lucky.", code="PACKET_KIND_INVALID", field="kind")
    total = wallet.validate_amount(amount)
    greeting = _greeting(greeting)
    conversation = conversation_of_member(conversation_id, sender.pk)
    count = _check_parts(conversation, total=total, count=count)
    if conversation.kind == Conversation.Kind.DIRECT:
        for payee in active_member_ids(conversation.pk) - {sender.pk}:
            risk.check_payee(payer_id=sender.pk, payee_id=payee, amount=total, confirmation=risk_confirmation)
    seed = rules.new_seed()
    parts = rules.lucky_split(total, count, seed) if kind == RedPacket.Kind.LUCKY else split_equally(total, count)
    now = clock.now()
    escrow = wallet.system_account(LedgerAccount.Kind.PAYMENTS_ESCROW)
    packet = RedPacket.objects.create(
        conversation=conversation, sender=sender, kind=kind, total=total, count=count, greeting=greeting,
        parts=parts, seed=seed.hex(), seed_hash=rules.seed_hash(seed), idempotency_key=key,
        created_at=now, expires_at=now + dt.timedelta(hours=payments_setting("PACKET_EXPIRY_HOURS")),
    )
    source = wallet.ensure_wallet(user_id=sender.pk)
    packet.send_entry = wallet.transfer(
        source_id=source.pk, destination_id=escrow.pk, amount=total, kind="red_packet",
        idempotency_key=f"payments:packet:{packet.pk}:send", memo=f"红包 {greeting}"[:140],
        initiated_by_id=sender.pk,
    ).entry
    packet.save(update_fields=["send_entry"])
    activity_hooks.report_activity(user_id=sender.pk, kind="red_packet", amount=total,
                                   reference=f"wallet:entry:{packet.send_entry.pk}",
                                   occurred_at=packet.send_entry.created_at)
    post_card(packet, sender=sender, kind="red_packet", id_field="red_packet_id", type_name=TYPE,
              title=greeting, state=card_state(packet))
    return packet


def grab_red_packet(*, user: Any, packet_id: int) -> RedPacketGrab:
    """Open a red packet: the next pre-drawn part, once per member, while it is open and not expired."""
    count_money_action(user)
    with transaction.atomic():
        packet = RedPacket.objects.select_for_update().filter(pk=packet_id).first()
        if packet is None or not is_member(packet.conversation_id, user.pk):
            raise NotFound(field="redPacketId")  # strangers and members who left learn nothing
        if RedPacketGrab.objects.filter(packet=packet, user=user).exists():
            raise AlreadyGrabbed(field="redPacketId")
        if packet.sender_id == user.pk and packet.conversation.kind == Conversation.Kind.DIRECT:
            raise CannotGrabOwn(field="redPacketId")
        if packet.status != RedPacket.Status.OPEN or clock.now() >= packet.expires_at:
            raise PacketClosed(field="redPacketId")
        index = packet.grabbed_count
        amount = packet.parts[index]
        escrow = wallet.system_account(LedgerAccount.Kind.PAYMENTS_ESCROW)
        destination = wallet.ensure_wallet(user_id=user.pk)
        entry = wallet.transfer(
            source_id=escrow.pk, destination_id=destination.pk, amount=amount, kind="red_packet",
            idempotency_key=f"payments:packet:{packet.pk}:grab:{index}", memo=f"红包 {packet.greeting}"[:140],
            initiated_by_id=user.pk,
        ).entry
        grab = RedPacketGrab.objects.create(packet=packet, user=user, index=index, amount=amount, entry=entry)
        packet.grabbed_count += 1
        packet.grabbed_amount += amount
        if packet.grabbed_count == packet.count:
            packet.status, packet.closed_at = RedPacket.Status.EMPTY, clock.now()
        packet.save(update_fields=["grabbed_count", "grabbed_amount", "status", "closed_at"])
        update_card(packet, card_state(packet))
        if packet.status == RedPacket.Status.EMPTY and packet.funding == RedPacket.Funding.SENDER:
            tell([packet.sender_id], event="payments.red_packet_emptied", title="红包已领完",
                 body=f"你的红包 {format_fen(packet.total)} 已被领完。",
                 payload={"id": gid_packet(packet)}, conversation_id=packet.conversation_id)
        return grab


def gid_packet(packet: RedPacket) -> str:
    return encode_id(TYPE, packet.pk)


def expire_red_packets(*, limit: int = 200) -> int:
    """Refund what is left of packets past their expiry, exactly once each. Idempotent; returns how many."""
    due = list(RedPacket.objects.filter(status=RedPacket.Status.OPEN, expires_at__lte=clock.now())
               .order_by("id").values_list("pk", flat=True)[:limit])
    done = 0
    for packet_id in due:
        with transaction.atomic():
            packet = RedPacket.objects.select_for_update().get(pk=packet_id)
            if packet.status != RedPacket.Status.OPEN:
                continue  # emptied (or expired by another worker) meanwhile
            rest = _refund_rest(packet)
            if packet.funding == RedPacket.Funding.SENDER:
                tell([packet.sender_id], event="payments.red_packet_expired", title="红包已过期",
                     body=f"红包未领完的 {format_fen(rest)} 已退回。", payload={"id": gid_packet(packet)},
                     conversation_id=packet.conversation_id)
            done += 1
    return done


def _refund_rest(packet: RedPacket) -> int:
    """Close an open packet (the caller holds its row lock): what nobody grabbed goes back where it came from
    — the sender's wallet, or the marketing budget for a platform packet — once. Returns the amount."""
    rest = packet.total - packet.grabbed_amount
    escrow = wallet.system_account(LedgerAccount.Kind.PAYMENTS_ESCROW)
    if packet.funding == RedPacket.Funding.MARKETING:
        if rest > 0:  # before the ledger moves: lock order packet → the promoter's allocation → accounts
            platform_packets.refunded(packet.pk, rest)
        destination_id = wallet.system_account(LedgerAccount.Kind.MARKETING_BUDGET).pk
    else:
        destination_id = wallet.ensure_wallet(user_id=packet.sender_id).pk
    if rest > 0:
        packet.refund_entry = wallet.transfer(
            source_id=escrow.pk, destination_id=destination_id, amount=rest, kind="red_packet_refund",
            idempotency_key=f"payments:packet:{packet.pk}:refund", memo="红包退款 Red packet refund",
        ).entry
    packet.refunded_amount = rest
    packet.status, packet.closed_at = RedPacket.Status.EXPIRED, clock.now()
    packet.save(update_fields=["refund_entry", "refunded_amount", "status", "closed_at"])
    update_card(packet, card_state(packet))
    return rest


PLATFORM_SENDER_INDEX = "platform:payments:red-packets"  # in place of a phone index: nobody can sign in as it
PLATFORM_SENDER_NAME = "圈子红包"


def platform_sender() -> User:
    """The platform's own red-packet sender: a service-account user (the verified badge) owned by payments,
    created on first use. Its packets are paid from the marketing budget, never from a wallet of its own."""
    user = User.objects.filter(phone_index=PLATFORM_SENDER_INDEX).first()
    if user is not None:
        return user
    try:
        with transaction.atomic():
            user = User(display_name=PLATFORM_SENDER_NAME, role=User.Role.SERVICE_ACCOUNT, phone="",
                        phone_index=PLATFORM_SENDER_INDEX)
            user.set_unusable_password()
            user.save()
            return user
    except IntegrityError:  # created concurrently
        return User.objects.get(phone_index=PLATFORM_SENDER_INDEX)


def send_platform_red_packet(*, recipient_id: int, amount: int, idempotency_key: str, greeting: str,
                             kind: str = "red_packet", allocation: Any = None) -> tuple[RedPacket, bool]:
    """The platform sends one person a one-part red packet paid from the marketing budget (e.g. a referral
    welcome bonus), in the recipient's service conversation with the platform sender; they open it like any
    red packet. Returns (packet, replayed): one packet per idempotency key, ever.

    `allocation` is the promoting app's budget row, locked by the caller (wallet.pay_from_marketing_budget):
    it is charged now, and core.platform_packets' refund listeners hear when an unopened packet's money goes
    back. BUDGET_EXHAUSTED (nothing created, nothing moved) when the allocation or the marketing
    account cannot cover it."""
    key = client_key(idempotency_key)
    amount = wallet.validate_amount(amount)
    greeting = _greeting(greeting)
    sender = platform_sender()
    return create_once(RedPacket, {"sender": sender, "idempotency_key": key}, lambda: _send_platform(
        sender=sender, recipient_id=recipient_id, amount=amount, key=key, greeting=greeting, kind=kind,
        allocation=allocation))


def _send_platform(*, sender: User, recipient_id: int, amount: int, key: str, greeting: str, kind: str,
                   allocation: Any) -> RedPacket:
    conversation = chat_services.open_service_conversation(
        service_account_id=sender.pk, subscriber_id=recipient_id, title=PLATFORM_SENDER_NAME)
    seed = rules.new_seed()
    now = clock.now()
    packet = RedPacket.objects.create(
        conversation=conversation, sender=sender, kind=RedPacket.Kind.FIXED, total=amount, count=1,
        greeting=greeting, parts=[amount], seed=seed.hex(), seed_hash=rules.seed_hash(seed),
        idempotency_key=key, funding=RedPacket.Funding.MARKETING, created_at=now,
        expires_at=now + dt.timedelta(hours=payments_setting("PACKET_EXPIRY_HOURS")))
    escrow = wallet.system_account(LedgerAccount.Kind.PAYMENTS_ESCROW)
    packet.send_entry = wallet.pay_from_marketing_budget(
        user_id=None, destination_id=escrow.pk, amount=amount, kind=kind, allocation=allocation,
        idempotency_key=f"payments:packet:{packet.pk}:send", memo=f"红包 {greeting}"[:140])
    packet.save(update_fields=["send_entry"])
    post_card(packet, sender=sender, kind="red_packet", id_field="red_packet_id", type_name=TYPE,
              title=greeting, state=card_state(packet), service=True)
    return packet


def withdraw_platform_red_packet(*, packet_id: int) -> int:
    """Take back a platform packet nobody opened (e.g. its referral reward was clawed back): the money goes
    back to the marketing budget and the card shows it closed. Returns the amount refunded: 0 when it was
    already opened or closed (then the caller recovers it from the recipient as far as it can)."""
    with transaction.atomic():
        packet = RedPacket.objects.select_for_update().get(pk=packet_id)
        if packet.funding != RedPacket.Funding.MARKETING:
            raise ValueError("only platform red packets can be withdrawn")
        if packet.status != RedPacket.Status.OPEN:
            return 0
        return _refund_rest(packet)


def _send_for_core(**kwargs) -> platform_packets.SentPacket:
    packet, replayed = send_platform_red_packet(**kwargs)
    return platform_packets.SentPacket(packet_id=packet.pk, total=packet.total, send_entry_id=packet.send_entry_id,
                                       replayed=replayed)


PLATFORM_PACKETS = platform_packets.Implementation(
    send=_send_for_core, withdraw=lambda packet_id: withdraw_platform_red_packet(packet_id=packet_id))
