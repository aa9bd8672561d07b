from django.apps import AppConfig


class AdvisorsConfig(AppConfig):
    name = "backend.advisors"
    label = "advisors"
    verbose_name = "Client managers"

    def ready(self) -> None:
        from celery.schedules import crontab

        from backend.accounts import signals as account_signals
        from backend.core import customer_tiers, message_hooks, staff_directory
        from backend.notifications import schedule
        from backend.notifications.signals import notification_recorded

        from . import office_hours, security, selectors

        # Chat tells core.message_hooks about each new message; a customer writing outside their manager's
        # office hours gets one automatic reply per closed window.
        message_hooks.register_message_listener(office_hours.on_message_posted)
        # Apps that may not import advisors (referrals' per-branch staff leaderboard) read branches through core.
        staff_directory.register_branch_provider(selectors.branches_of)
        # Campaigns limit offers to customer tiers without importing advisors.
        customer_tiers.register_tier_lookup(selectors.tiers_of)
        schedule.register_periodic("advisors.compute_tiers", "advisors.compute_tiers", crontab=crontab(hour=2, minute=30))
        # Login alerts also arrive as messages from the "Security" service account (when operations created one).
        account_signals.security_event.connect(security.on_security_event, dispatch_uid="advisors.security_account")
        # So do balance-change alerts, posted after the money movement commits.
        notification_recorded.connect(security.on_notification_recorded, dispatch_uid="advisors.security_money")
        # Whether there is a Security account is remembered for a few seconds; a change made here is heard now.
        from django.db.models.signals import post_delete, post_save

        from .models import ServiceAccount
        from .services.service_accounts import forget_security_account

        for signal in (post_save, post_delete):
            signal.connect(forget_security_account, sender=ServiceAccount,
                           dispatch_uid=f"advisors.forget_security_account.{signal is post_save}")
