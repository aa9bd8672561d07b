"""Operations' screens: campaigns built from templates (with their odds table inline and a results chart),
coupon types (with an action to issue one to a customer), points rules, user regions; coupons, grants, draws,
activities and the points ledger read-only (they change only through services)."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm

from backend.core.audit import AuditedAdmin
from backend.core.errors import DomainError
from backend.wallet.admin import ReadOnlyAdmin

from . import charts, selectors, services
from .models import (
    Activity,
    Campaign,
    Coupon,
    CouponGrant,
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
        (None, {"fields": ("name", "template", "is_active", "regions", "tiers", "starts_at", "ends_at", "budget",
                           "spent")}),
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


def _new_key() -> str:
    return f"admin-{uuid.uuid4().hex}"


class IssueCouponForm(ActionForm):
    """The action bar's extra fields for "issue to a customer". The key is new each time the page is drawn, so
    submitting the same page twice issues once."""

    user_id = forms.IntegerField(required=False, min_value=1, label="Customer (user id)")
    reason = forms.CharField(required=False, max_length=200, label="Reason")
    idempotency_key = forms.CharField(required=False, widget=forms.HiddenInput, initial=_new_key)


@admin.register(CouponType)
class CouponTypeAdmin(AuditedAdmin):
    list_display = ("name", "kind", "value", "stock", "claimed_count", "per_user_limit", "valid_from",
                    "valid_until", "campaign")
    list_filter = ("kind",)
    readonly_fields = ("claimed_count",)
    action_form = IssueCouponForm
    actions = ["issue_to_customer"]

    @admin.action(description="Issue one coupon of the selected type to the customer (user id, reason below)")
    def issue_to_customer(self, request, queryset):
        """Audited like every action (the type's claimed count before/after); the CouponGrant row keeps who
        issued what to whom and why."""
        user_id, reason = request.POST.get("user_id", ""), request.POST.get("reason", "")
        key = request.POST.get("idempotency_key") or _new_key()
        types = list(queryset.order_by("id"))
        if not user_id.isdigit():
            self.message_user(request, "Give the customer's user id.", level=messages.ERROR)
            return
        for coupon_type in types:
            try:
                coupon, replayed = services.issue_coupon(
                    staff=request.user, user_id=int(user_id), coupon_type_id=coupon_type.pk, reason=reason,
                    idempotency_key=key if len(types) == 1 else f"{key}-{coupon_type.pk}")
            except DomainError as exc:
                self.message_user(request, f"{coupon_type.name}: {exc.code} {exc.message}", level=messages.ERROR)
            else:
                self.message_user(request, f"{coupon_type.name}: coupon #{coupon.pk} "
                                           f"{'was already issued' if replayed else 'issued'} to user {user_id}.")

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
    list_display = ("user", "region")
    raw_id_fields = ("user",)


@admin.register(Coupon)
class CouponAdmin(ReadOnlyAdmin):
    list_display = ("id", "coupon_type", "owner", "status", "source", "issued_at", "expires_at", "redeemed_at")
    list_filter = ("status", "source", "coupon_type")


@admin.register(CouponGrant)
class CouponGrantAdmin(ReadOnlyAdmin):
    list_display = ("id", "coupon_type", "user", "issued_by", "reason", "coupon", "created_at")
    list_filter = ("coupon_type",)


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
