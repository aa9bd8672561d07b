"""`make run` seeds demo data through the real services; running it again changes nothing."""

import pytest
from django.core.management import call_command

from backend.accounts.models import User
from backend.chat.models import Conversation, Message
from backend.circles.models import CircleMember, Post
from backend.wallet.models import JournalEntry, LedgerAccount
from backend.wallet.selectors import reconcile

pytestmark = pytest.mark.django_db


def snapshot():
    return (
        User.objects.count(),
        sorted(LedgerAccount.objects.values_list("id", "balance")),
        JournalEntry.objects.count(),
        Conversation.objects.count(),
        Message.objects.count(),
        CircleMember.objects.count(),
        Post.objects.count(),
    )


def test_demo_data_is_real_and_idempotent():
    call_command("seed_demo", verbosity=0)
    first = snapshot()
    zhang = User.objects.get_by_phone("+8613800000001")
    li = User.objects.get_by_phone("+8613800000002")
    assert LedgerAccount.objects.get(owner=zhang).balance == 100_000 - 8_800
    assert LedgerAccount.objects.get(owner=li).balance == 100_000 + 8_800
    assert Conversation.objects.filter(kind=Conversation.Kind.GROUP).count() == 1
    assert Message.objects.filter(kind=Message.Kind.TEXT).count() == 6
    assert User.objects.get_by_phone("+8613800000099").is_staff
    assert CircleMember.objects.filter(left_at__isnull=True).count() == 3  # the demo alumni circle
    call_command("seed_demo", verbosity=0)
    assert snapshot() == first
    assert reconcile().ok


def test_seed_demo_needs_an_explicit_opt_in_with_debug_off(settings, capsys):
    from django.core.management.base import CommandError

    settings.DEBUG, settings.TESTING, settings.ALLOW_DEMO_DATA = False, False, False
    settings.ALLOW_SANDBOX_GATEWAY = True  # demo wallets are funded through the sandbox bank
    with pytest.raises(CommandError, match="ALLOW_DEMO_DATA=1"):
        call_command("seed_demo", verbosity=0)
    assert User.objects.count() == 0
    settings.ALLOW_DEMO_DATA = True
    call_command("seed_demo", verbosity=0)
    assert "WARNING: ALLOW_DEMO_DATA=1" in capsys.readouterr().err
    assert User.objects.filter(is_superuser=True).exists()
