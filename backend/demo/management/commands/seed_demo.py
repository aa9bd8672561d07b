"""Demo data for `make run`: a few users, a client manager and an operations login. Idempotent."""

from django.core.management.base import BaseCommand
from django.db import transaction

from backend.accounts.models import User, phone_index

DEMO_PASSWORD = "quanzi-demo-2026"
DEMO_USERS = [
    ("+8613800000001", "张伟 Zhang Wei", User.Role.CUSTOMER, False),
    ("+8613800000002", "李娜 Li Na", User.Role.CUSTOMER, False),
    ("+8613800000003", "王芳 Wang Fang", User.Role.CUSTOMER, False),
    ("+8613800000010", "客户经理 陈静 Chen Jing", User.Role.CLIENT_MANAGER, False),
    ("+8613800000099", "Operations", User.Role.CUSTOMER, True),
]


class Command(BaseCommand):
    help = "Create demo users (password login and SMS code login both work)."

    @transaction.atomic
    def handle(self, *args, **options):
        for phone, name, role, is_ops in DEMO_USERS:
            user = User.objects.filter(phone_index=phone_index(phone)).first()
            if user is None:
                user = User.objects.create_user(
                    phone, DEMO_PASSWORD, display_name=name, role=role, kyc_level=User.KycLevel.VERIFIED,
                    is_staff=is_ops, is_superuser=is_ops,
                )
                self.stdout.write(f"created {name} {phone}")
        self.stdout.write(self.style.SUCCESS(f"demo users ready (password: {DEMO_PASSWORD})"))
