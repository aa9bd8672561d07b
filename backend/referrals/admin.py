"""Operations' screens: campaigns (with their funnel, budget burn and staff leaderboard per branch), share
codes, attributions, qualifying events, rewards and clawbacks, abuse flags. Branches are advisors' (read through
core.staff_directory). Rewards and money are read-only here: they change only through services."""

from __future__ import annotations

from django.contrib import admin, messages

from backend.core.audit import AuditedAdmin
from backend.core.errors import DomainError
from backend.wallet.admin import ReadOnlyAdmin

from . import charts, selectors, services
from .models import (
    AbuseFlag,
    Attribution,
    Campaign,
    DoublingCard,
    QualifyingEvent,
    RateBoost,
    Reward,
    ShareCode,
)


@admin.register(Campaign)
class CampaignAdmin(AuditedAdmin):
    list_display = ("name", "scope", "boost_bp", "cap_bp", "budget", "spent", "remaining", "starts_at", "ends_at",
                    "is_active")
    list_filter = ("is_active", "scope")
    readonly_fields = ("spent", "created_at", "funnel_chart", "budget_chart", "staff_leaderboard")
    fieldsets = (
        (None, {"fields": ("name", "scope", "shared_product_id", "is_active", "starts_at", "ends_at")}),
        ("Rewards", {"fields": ("boost_bp", "cap_bp", "boost_days", "welcome_min", "welcome_max",
                                "awards_doubling_card")}),
        ("Qualifying action", {"fields": ("qualifying_kind", "qualifying_min_amount", "holding_days")}),
        ("Budget and abuse rules", {"fields": ("budget", "spent", "daily_rewards_per_referrer")}),
        ("Funnel", {"fields": ("funnel_chart",)}),
        ("Budget burn", {"fields": ("budget_chart",)}),
        ("Staff leaderboard by branch", {"fields": ("staff_leaderboard",)}),
    )

    def has_delete_permission(self, request, obj=None):
        return False  # rewards reference their campaign; end it instead

    @admin.display(description="Funnel")
    def funnel_chart(self, obj: Campaign):
        return charts.funnel_svg(selectors.campaign_funnel(obj)) if obj.pk else "—"

    @admin.display(description="Budget")
    def budget_chart(self, obj: Campaign):
        if not obj.pk:
            return "—"
        return charts.budget_svg(budget=obj.budget, spent=obj.spent, burn=selectors.budget_burn(obj))

    @admin.display(description="Client managers")
    def staff_leaderboard(self, obj: Campaign):
        return charts.leaderboard_html(selectors.staff_leaderboard(obj)) if obj.pk else "—"


@admin.register(ShareCode)
class ShareCodeAdmin(ReadOnlyAdmin):
    list_display = ("code", "owner", "campaign", "channel", "is_staff", "share_count", "created_at")
    list_filter = ("channel", "is_staff", "campaign")
    search_fields = ("code",)


@admin.register(Attribution)
class AttributionAdmin(ReadOnlyAdmin):
    list_display = ("id", "referee", "referrer", "share_code", "campaign", "created_at", "qualified_at")
    list_filter = ("campaign",)


@admin.register(QualifyingEvent)
class QualifyingEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "kind", "amount", "reference", "status", "ignored_reason", "occurred_at",
                    "settles_at", "reversed_at")
    list_filter = ("status", "kind", "ignored_reason")
    search_fields = ("reference",)


@admin.register(Reward)
class RewardAdmin(ReadOnlyAdmin):
    """Granted, rejected (with the rule's reason code) and clawed-back rewards; filter by status for the
    clawback screen (recovered vs owed)."""

    list_display = ("id", "campaign", "referrer", "referee", "status", "reason_code", "boost_bp", "welcome_amount",
                    "welcome_refunded", "recovered_amount", "owed_amount", "created_at", "clawed_back_at")
    list_filter = ("status", "reason_code", "campaign")
    actions = ["claw_back"]

    @admin.action(description="Claw back selected rewards (their qualifying action is treated as reversed)")
    def claw_back(self, request, queryset):
        for reward in queryset.select_related("event"):
            try:
                services.reverse_qualifying_event(reference=reward.event.reference)
            except DomainError as exc:
                self.message_user(request, f"Reward #{reward.pk}: {exc.code} {exc.message}", level=messages.ERROR)
            else:
                self.message_user(request, f"Reward #{reward.pk} clawed back.")


@admin.register(RateBoost)
class RateBoostAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "scope", "bp", "cap_bp", "starts_at", "ends_at", "revoked_at")
    list_filter = ("scope",)


@admin.register(DoublingCard)
class DoublingCardAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "scope", "status", "day", "expires_at", "paid_amount")
    list_filter = ("status",)


@admin.register(AbuseFlag)
class AbuseFlagAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "kind", "detail", "created_at", "reviewed_at", "reviewed_by", "resolution")
    list_filter = ("kind", ("reviewed_at", admin.EmptyFieldListFilter))
    actions = ["mark_reviewed"]

    @admin.action(description="Mark selected flags reviewed")
    def mark_reviewed(self, request, queryset):
        for flag in queryset:
            services.review_flag(flag_id=flag.pk, reviewer=request.user, resolution="reviewed in admin")
        self.message_user(request, f"Reviewed {queryset.count()} flag(s).")

