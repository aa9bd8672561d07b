"""Rebuild every balance from the journal and compare with the cached figures. Exit 1 on any mismatch."""

from django.core.management.base import BaseCommand, CommandError

from backend.wallet.selectors import reconcile


class Command(BaseCommand):
    help = "Check the ledger: zero-sum entries, cached balances and holds equal the rows, no overdrafts."

    def handle(self, *args, **options):
        report = reconcile()
        self.stdout.write(f"accounts checked: {report.accounts_checked}")
        self.stdout.write(f"entries checked:  {report.entries_checked}")
        self.stdout.write(f"ledger total:     {report.ledger_total} fen")
        for kind, total in sorted(report.system_totals.items()):  # the external bank summed over its shards
            self.stdout.write(f"system account {kind}: {total} fen")
        for problem in report.problems:
            self.stdout.write(self.style.ERROR(f"MISMATCH {problem}"))
        if not report.ok:
            raise CommandError(f"ledger reconciliation failed: {len(report.problems)} mismatch(es)")
        self.stdout.write(self.style.SUCCESS("ledger reconciled: no mismatches"))
