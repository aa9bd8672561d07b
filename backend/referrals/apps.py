from django.apps import AppConfig


class ReferralsConfig(AppConfig):
    name = "backend.referrals"
    label = "referrals"
    verbose_name = "Referrals"

    def ready(self) -> None:
        from backend.core import customer_metrics

        from . import selectors, tasks  # noqa: F401  (tasks registers the periodic jobs)

        # Rewarded referrals feed the advisors app's customer tiers without advisors importing referrals.
        customer_metrics.register_metric(customer_metrics.REFERRALS, selectors.rewarded_referral_counts)

        # An unopened welcome red packet's money back in the marketing budget is back in its campaign too.
        from backend.payments.signals import platform_red_packet_refunded

        from .services.rewards import on_packet_refunded

        platform_red_packet_refunded.connect(on_packet_refunded, dispatch_uid="referrals.welcome_packet_refunded")
