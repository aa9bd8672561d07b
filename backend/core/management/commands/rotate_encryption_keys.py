"""Re-encrypt every encrypted column under the primary key id of QUANZI_KEYS.

Run after putting a new key first in QUANZI_KEYS (keep the old key listed until this finishes).
"""

from django.core.management.base import BaseCommand
from django.db import connection, transaction

from backend.core.crypto import encrypted_fields, keyring


class Command(BaseCommand):
    help = "Re-encrypt rows still sealed under an old key id."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, batch_size: int, **options):
        ring = keyring()
        total = 0
        for model, field in encrypted_fields():
            pks = _stale_primary_keys(model, field, ring.primary_id)
            for start in range(0, len(pks), batch_size):
                with transaction.atomic():
                    for row in model._default_manager.select_for_update().filter(pk__in=pks[start:start + batch_size]):
                        # Loading decrypts with the old key; saving seals with the primary key.
                        row.save(update_fields=[field.name])
                        total += 1
            self.stdout.write(f"{model._meta.label}.{field.name}: {len(pks)} re-encrypted")
        self.stdout.write(self.style.SUCCESS(f"done: {total} values now under key {ring.primary_id}"))


def _stale_primary_keys(model, field, primary_id: str) -> list:
    """Read the raw column: ORM lookups would encrypt the pattern instead of matching the stored prefix."""
    qn = connection.ops.quote_name
    table, column, pk = model._meta.db_table, field.column, model._meta.pk.column
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {qn(pk)} FROM {qn(table)} WHERE {qn(column)} IS NOT NULL AND {qn(column)} <> '' "
            f"AND {qn(column)} NOT LIKE %s ORDER BY {qn(pk)}",
            [f"{primary_id}:%"],
        )
        return [row[0] for row in cursor.fetchall()]
