"""Operations' screens: campaigns built from templates (with their odds table inline and a results chart),
coupon types, points rules, user regions; coupons, draws, activities and the points ledger read-only (they
change only through services)."""

from __future__ import annotations

from django.contrib import admin

from backend.core.audit import AuditedAdmin
from backend.wallet.admin import ReadOnlyAdmin

from . import charts, selectors
from .models import (
    Activity,
    Campaign,
    Coupon,
    CouponType,
    Draw,
    PointsAccount,
    PointsEntry,
    PointsRule,
    Prize,
    UserRegion,
)


class PrizeInline(admin.TabularInline):
    model = Prize
    extra = 1
    fields = ("name", "kind", "points", "coupon_type", "cash_amount", "weight", "stock", "awarded")
    readonly_fields = ("awarded",)

    def has_delete_permission(self, request, obj=None):
        return False  # draws name their prizes; set the weight to 0 instead


@admin.register(Campaign)
class CampaignAdmin(AuditedAdmin):
    list_display = ("name", "template", "regions", "starts_at", "ends_at", "budget", "spent", "is_active")
    list_filter = ("template", "is_active")
    readonly_fields = ("spent", "seed_hash", "revealed_seed_display", "created_at", "results_chart")
    inlines = [PrizeInline]
    fieldsets = (
        (None, {"fields": ("name", "template", "is_active", "regions", "starts_at", "ends_at", "budget", "spent")}),
        ("Lottery after a transaction", {"fields": ("trigger_kind", "trigger_min_amount")}),
        ("Points lottery", {"fields": ("draw_cost_points",)}),
        ("Draws", {"fields": ("daily_draws_per_user", "no_prize_weight", "seed_hash", "revealed_seed_display")}),
        ("Share reward", {"fields": ("referral_campaign",)}),
        ("Results", {"fields": ("results_chart",)}),
    )

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        """Draws move `spent` while staff edit: lock the row and keep the stored figure (the change view is one
        transaction, so the lock holds until the save commits)."""
        if change:
            obj.spent = Campaign.objects.select_for_update().get(pk=obj.pk).spent
            if obj.budget < obj.spent:  # paid out since the form was validated
                obj.budget = obj.spent
        super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        """Likewise each prize's `awarded` (locked in id order, after the campaign, like a draw)."""
        if formset.model is Prize:
            ids = sorted(f.instance.pk for f in formset.forms if f.instance.pk)
            stored = dict(Prize.objects.select_for_update().filter(pk__in=ids).order_by("id")
                          .values_list("id", "awarded"))
            for f in formset.forms:
                if f.instance.pk in stored:
                    f.instance.awarded = stored[f.instance.pk]
                    f.instance.stock = max(f.instance.stock, f.instance.awarded)
        super().save_formset(request, form, formset, change)

    @admin.display(description="Seed (revealed when the campaign ends)")
    def revealed_seed_display(self, obj: Campaign):
        return (obj.revealed_seed() or "hidden until the end") if obj.pk else "—"

    @admin.display(description="Issued / claimed / redeemed, cost against budget")
    def results_chart(self, obj: Campaign):
        return charts.campaign_svg(selectors.campaign_stats(obj)) if obj.pk else "—"


@admin.register(CouponType)
class CouponTypeAdmin(AuditedAdmin):
    list_display = ("name", "kind", "value", "stock", "claimed_count", "per_user_limit", "valid_from",
                    "valid_until", "campaign")
    list_filter = ("kind",)
    readonly_fields = ("claimed_count",)

    def save_model(self, request, obj, form, change):
        """Claims move `claimed_count` while staff edit: keep the stored figure (row locked until commit)."""
        if change:
            obj.claimed_count = CouponType.objects.select_for_update().get(pk=obj.pk).claimed_count
            obj.stock = max(obj.stock, obj.claimed_count)
        super().save_model(request, obj, form, change)


@admin.register(PointsRule)
class PointsRuleAdmin(AuditedAdmin):
    list_display = ("activity_kind", "min_amount", "fixed_points", "points_per_yuan", "valid_days", "is_active")


@admin.register(UserRegion)
class UserRegionAdmin(AuditedAdmin):
    list_display = ("user", "region", "tier")
    raw_id_fields = ("user",)


@admin.register(Coupon)
class CouponAdmin(ReadOnlyAdmin):
    list_display = ("id", "coupon_type", "owner", "status", "source", "issued_at", "expires_at", "redeemed_at")
    list_filter = ("status", "source", "coupon_type")


@admin.register(Draw)
class DrawAdmin(ReadOnlyAdmin):
    list_display = ("id", "campaign", "user", "roll", "slot_prize", "prize", "outcome", "points_spent", "created_at")
    list_filter = ("outcome", "campaign")


@admin.register(Activity)
class ActivityAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "kind", "amount", "reference", "points", "occurred_at", "reversed_at")
    search_fields = ("reference",)


@admin.register(PointsAccount)
class PointsAccountAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "owner", "balance")
    list_filter = ("kind",)


@admin.register(PointsEntry)
class PointsEntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "reference", "memo", "created_at")
    list_filter = ("kind",)
    search_fields = ("reference",)
