"""Open a wallet for every user who has none: from now on wallets are opened at sign-up (wallet.signals), so
reading `myWallet` never writes."""

from django.conf import settings
from django.db import migrations


def open_missing_wallets(apps, schema_editor):
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    LedgerAccount = apps.get_model("wallet", "LedgerAccount")
    with_wallet = LedgerAccount.objects.filter(kind="user_wallet").values("owner_id")
    missing = User.objects.exclude(pk__in=with_wallet).values_list("pk", flat=True)
    LedgerAccount.objects.bulk_create(
        [LedgerAccount(kind="user_wallet", owner_id=pk) for pk in missing.iterator()], batch_size=1000
    )


class Migration(migrations.Migration):
    dependencies = [
        ("wallet", "0003_sandboxbankrecord_bankoperation_last_sent_at"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(open_missing_wallets, migrations.RunPython.noop)]
