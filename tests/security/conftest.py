"""The attacker's world: Ada and Bob share a group and a direct conversation; Eve shares nothing with them.

`snapshot()` captures every row of every app, so "nothing changed" is one equality.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.apps import apps

from backend.accounts.ids import user_gid
from backend.accounts.models import Device, User
from backend.accounts.services import DeviceInfo, _start_session
from backend.chat import services as chat
from backend.core.ids import encode_id
from backend.wallet import services as wallet
from backend.wallet.models import LedgerAccount
from tests.conftest import befriend

ADA_PHONE, BOB_PHONE, EVE_PHONE = "+8613712345671", "+8613787654322", "+8613755501233"
# what must never show up in a response to someone else: the national number and its last 8 digits
SECRET_DIGITS = {p: (p[3:], p[-8:]) for p in (ADA_PHONE, BOB_PHONE)}

MISSING_PK = 987_654_321
VOLATILE = {"accounts.device": {"last_seen_at"}}


def snapshot() -> dict:
    state = {}
    for label in ("accounts", "chat", "wallet", "notifications"):
        for model in apps.get_app_config(label).get_models():
            skip = VOLATILE.get(model._meta.label_lower, set())
            fields = [f.attname for f in model._meta.concrete_fields if f.attname not in skip]
            state[model._meta.label_lower] = list(model.objects.order_by("pk").values_list(*fields))
    return state


@dataclass
class World:
    ada: User
    bob: User
    eve: User
    ta: str
    tb: str
    te: str
    group: int
    direct: int
    message: int  # Ada's text message in the group
    bob_message: int  # Bob's message in the direct conversation
    ada_device: int  # Ada's second device (revocable)
    ada_notification: int

    def gid(self, kind: str, pk: int) -> str:
        return user_gid(pk) if kind == "User" else encode_id(kind, pk)


def build_world() -> World:
    ada = User.objects.create_user(ADA_PHONE, display_name="Ada")
    bob = User.objects.create_user(BOB_PHONE, display_name="Bob")
    eve = User.objects.create_user(EVE_PHONE, display_name="Eve")
    ta, tb, te = (_start_session(u, DeviceInfo()).access_token for u in (ada, bob, eve))
    second = _start_session(ada, DeviceInfo(name="Ada's tablet")).device
    befriend(ada, bob)  # only friends (or circle co-members) may chat since circles (core.reach)
    group = chat.create_group(owner=ada, title="Family", member_ids=[bob.pk])
    direct = chat.open_direct_conversation(user=ada, other_user_id=bob.pk)
    message = chat.send_message(conversation_id=group.pk, sender=ada, client_msg_id="ada-1", kind="text",
                                text="hello family", attachment=None, reply_to_seq=None, mention_ids=[]).message
    bob_message = chat.send_message(conversation_id=direct.pk, sender=bob, client_msg_id="bob-1", kind="text",
                                    text="hi Ada", attachment=None, reply_to_seq=None, mention_ids=[]).message
    from backend.notifications.models import Notification

    notification = Notification.objects.filter(recipient_id=ada.pk).order_by("pk").first()
    assert notification is not None, "Bob's message should have notified idle Ada"
    for user in (ada, bob, eve):
        account = wallet.ensure_wallet(user_id=user.pk)
        bank = wallet.system_account(LedgerAccount.Kind.EXTERNAL_BANK)
        wallet.transfer(source_id=bank.pk, destination_id=account.pk, amount=100_000,
                        idempotency_key=f"test:fund:{user.pk}", kind="top_up")
    assert Device.objects.filter(pk=second.pk, revoked_at__isnull=True).exists()
    return World(ada=ada, bob=bob, eve=eve, ta=ta, tb=tb, te=te, group=group.pk, direct=direct.pk,
                 message=message.pk, bob_message=bob_message.pk, ada_device=second.pk,
                 ada_notification=notification.pk)


@pytest.fixture
def world(db) -> World:
    return build_world()


def leaks_phone(text: str) -> list[str]:
    return [digits for secrets in SECRET_DIGITS.values() for digits in secrets if digits in text]
