"""Demo data for `make run`: customers with money in their wallets, a client manager, an operations login,
and chats to look at. Idempotent: every write goes through the real services with fixed idempotency keys
and client message ids, so running it twice changes nothing."""

import datetime as dt

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from backend.accounts.models import User, phone_index
from backend.chat import services as chat
from backend.chat.models import Conversation
from backend.circles import selectors as circles_selectors
from backend.circles import services as circles
from backend.circles.models import Circle
from backend.core import clock
from backend.core.standins import guard_stand_in
from backend.wallet import services as wallet

DEMO_PASSWORD = "quanzi-demo-2026"
DEMO_USERS = [
    ("+8613800000001", "张伟 Zhang Wei", User.Role.CUSTOMER, False),
    ("+8613800000002", "李娜 Li Na", User.Role.CUSTOMER, False),
    ("+8613800000003", "王芳 Wang Fang", User.Role.CUSTOMER, False),
    ("+8613800000010", "客户经理 陈静 Chen Jing", User.Role.CLIENT_MANAGER, False),
    ("+8613800000099", "Operations", User.Role.CUSTOMER, True),
]
TOP_UP_FEN = 100_000  # ¥1,000.00 each


class Command(BaseCommand):
    help = "Create demo users, fund their wallets (sandbox gateway) and start a few chats."

    def handle(self, *args, **options):
        try:
            guard_stand_in("ALLOW_DEMO_DATA", in_use=True, allowed=settings.ALLOW_DEMO_DATA,
                           development=settings.DEBUG or settings.TESTING,
                           what=f"seed_demo creates demo users and a superuser whose password ({DEMO_PASSWORD}) "
                                "is published")
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        users = [self._user(*row) for row in DEMO_USERS]
        zhang, li, wang, manager, _ops = users
        for user in (zhang, li, wang):
            wallet.top_up(user=user, amount=TOP_UP_FEN, idempotency_key=f"demo-topup-{user.pk}")
        for a, b in ((zhang, li), (zhang, wang), (li, wang)):  # only friends may chat or pay (circles)
            if not circles_selectors.are_friends(a.pk, b.pk):
                request = circles.send_friend_request(user=a, to_user_id=b.pk, note="demo")
                circles.accept_friend_request(user=b, request_id=request.pk)
        wallet.send_money(sender=zhang, recipient_id=li.pk, amount=8_800, idempotency_key="demo-lunch-0001",
                          memo="午饭 lunch")
        direct = chat.open_direct_conversation(user=zhang, other_user_id=li.pk)
        self._say(direct, zhang, "demo-d1", "中午一起吃饭吗？Lunch together?")
        self._say(direct, li, "demo-d2", "好呀，12点楼下见 Sure, downstairs at 12")
        self._say(direct, zhang, "demo-d3", "饭钱转你了 Sent you the lunch money")

        group = Conversation.objects.filter(kind=Conversation.Kind.GROUP, owner=zhang, title="周末爬山 Weekend hike").first()
        if group is None:
            group = chat.create_group(owner=zhang, title="周末爬山 Weekend hike", member_ids=[li.pk, wang.pk])
        self._say(group, wang, "demo-g1", "周六早上8点出发？Saturday 8am?")
        self._say(group, li, "demo-g2", "我带水果 I'll bring fruit")

        self._circle(zhang, li, wang)

        advisor = chat.open_advisor_conversation(customer_id=zhang.pk, manager_id=manager.pk)
        self._say(advisor, manager, "demo-a1", "张先生您好，我是您的客户经理陈静，有问题随时找我。")
        self.stdout.write(self.style.SUCCESS(
            f"demo ready: users {', '.join(p for p, *_ in DEMO_USERS)} (password: {DEMO_PASSWORD})"
        ))

    def _circle(self, owner: User, *members: User) -> None:
        """An alumni circle with its chat, a moment and a salon (once)."""
        if Circle.objects.filter(owner=owner, name="清华2012级校友 THU 2012").exists():
            return
        circle = circles.create_circle(owner=owner, kind=Circle.Kind.ALUMNI, name="清华2012级校友 THU 2012",
                                       description="校友互助 Alumni helping alumni", join_policy="approval")
        for member in members:
            circles.decide_join_request(actor=owner, approve=True,
                                        request_id=circles.join_circle(user=member, circle_id=circle.pk).pk)
        circles.create_post(author=members[0], circle_id=circle.pk, text="周末校友聚会，有人一起吗？Reunion this weekend?")
        circles.create_event(actor=owner, circle_id=circle.pk, title="理财沙龙 Finance salon", place="五道口 Wudaokou",
                             starts_at=clock.now() + dt.timedelta(days=7), capacity=30)

    def _user(self, phone: str, name: str, role: str, is_ops: bool) -> User:
        user = User.objects.filter(phone_index=phone_index(phone)).first()
        if user is None:
            user = User.objects.create_user(
                phone, DEMO_PASSWORD, display_name=name, role=role, kyc_level=User.KycLevel.VERIFIED,
                is_staff=is_ops, is_superuser=is_ops,
            )
        return user

    def _say(self, conversation: Conversation, sender: User, client_msg_id: str, text: str) -> None:
        chat.send_message(conversation_id=conversation.pk, sender=sender, client_msg_id=client_msg_id, text=text)
