from django.apps import AppConfig


class LoansConfig(AppConfig):
    name = "backend.loans"
    label = "loans"
    verbose_name = "Acquaintance lending"

    def ready(self) -> None:
        from backend.core import customer_metrics

        from . import selectors, tasks  # noqa: F401  (tasks registers the periodic scans)

        # Loans repaid feed the advisors app's customer tiers without advisors importing loans.
        customer_metrics.register_metric(customer_metrics.LOANS_REPAID, selectors.loans_repaid_counts)
