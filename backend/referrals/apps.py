from django.apps import AppConfig


class ReferralsConfig(AppConfig):
    name = "backend.referrals"
    label = "referrals"
    verbose_name = "Referrals"

    def ready(self) -> None:
        from backend.core import customer_metrics, platform_packets, share_hooks

        from . import selectors, tasks  # noqa: F401  (tasks registers the periodic jobs)
        from .services.sharing import on_product_shared

        # Rewarded referrals feed the advisors app's customer tiers without advisors importing referrals.
        customer_metrics.register_metric(customer_metrics.REFERRALS, selectors.rewarded_referral_counts)
        # A product card shared through advisors counts as a share on the sharer's code (core.share_hooks).
        share_hooks.register_share_listener(on_product_shared)

        # An unopened welcome red packet's money back in the marketing budget is back in its campaign too.
        from .services.rewards import on_packet_refunded

        platform_packets.register_refund_listener(on_packet_refunded)
