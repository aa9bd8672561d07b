"""红包 Red packets: send (the total goes to escrow, the split is drawn now), grab (one pre-drawn part each, in
commit order), expire (the rest back to the sender, once).

Locking: a grab locks the packet row first, then (inside the wallet) the escrow and the grabber's wallet,
then (inside chat) the conversation for the card update — always in that order, so grabs queue on the
packet and never deadlock with each other or with the expiry scan.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction

from backend.chat.models import Conversation
from backend.core import activity_hooks, clock
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
        if packet.status == RedPacket.Status.EMPTY:
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
            rest = packet.total - packet.grabbed_amount
            escrow = wallet.system_account(LedgerAccount.Kind.PAYMENTS_ESCROW)
            if rest > 0:
                packet.refund_entry = wallet.transfer(
                    source_id=escrow.pk, destination_id=wallet.ensure_wallet(user_id=packet.sender_id).pk,
                    amount=rest, kind="red_packet_refund", idempotency_key=f"payments:packet:{packet.pk}:refund",
                    memo="红包退款 Red packet refund",
                ).entry
            packet.refunded_amount = rest
            packet.status, packet.closed_at = RedPacket.Status.EXPIRED, clock.now()
            packet.save(update_fields=["refund_entry", "refunded_amount", "status", "closed_at"])
            update_card(packet, card_state(packet))
            tell([packet.sender_id], event="payments.red_packet_expired", title="红包已过期",
                 body=f"红包未领完的 {format_fen(rest)} 已退回。", payload={"id": gid_packet(packet)},
                 conversation_id=packet.conversation_id)
            done += 1
    return done
