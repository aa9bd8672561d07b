"""Reads of the payments app, scoped to the caller: only active members of an object's conversation see it."""

from __future__ import annotations

from django.db.models import QuerySet

from backend.chat.models import Membership

from .models import Bill, FriendTransfer, RedPacket, Settlement, Share


def _my_conversations(user_id: int) -> QuerySet:
    return Membership.objects.filter(user_id=user_id, left_at__isnull=True).values("conversation_id")


def red_packets_visible_to(user_id: int) -> QuerySet[RedPacket]:
    return RedPacket.objects.filter(conversation_id__in=_my_conversations(user_id))


def transfers_visible_to(user_id: int) -> QuerySet[FriendTransfer]:
    return FriendTransfer.objects.filter(conversation_id__in=_my_conversations(user_id))


def bills_visible_to(user_id: int) -> QuerySet[Bill]:
    return Bill.objects.filter(conversation_id__in=_my_conversations(user_id))


def settlements_visible_to(user_id: int) -> QuerySet[Settlement]:
    return Settlement.objects.filter(conversation_id__in=_my_conversations(user_id))


def shares_visible_to(user_id: int) -> QuerySet[Share]:
    return Share.objects.filter(bill__conversation_id__in=_my_conversations(user_id))
