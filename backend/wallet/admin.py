"""Operations' view of the ledger. Balances and entries are read-only here: money moves only via services."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from backend.accounts.models import phone_index
from backend.core.errors import DomainError
from backend.core.phone import mask_phone, normalize_phone

from . import services
from .models import (
    BankOperation,
    Hold,
    IdempotencyRecord,
    JournalEntry,
    LedgerAccount,
    Leg,
    RiskListChange,
    RiskListEntry,
    SandboxBankRecord,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LedgerAccount)
class LedgerAccountAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "owner", "balance", "held", "available", "is_frozen", "created_at")
    list_filter = ("kind", "is_frozen")
    search_fields = ("owner__display_name",)
    raw_id_fields = ("owner",)
    readonly_fields = ("kind", "owner", "balance", "held", "created_at", "is_frozen", "frozen_reason")
    actions = ["freeze", "unfreeze"]

    def has_add_permission(self, request):
        return False  # wallets open on first use, system accounts on first need

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Freeze selected accounts (no new transfers or holds)")
    def freeze(self, request, queryset):
        for account in queryset:
            services.set_frozen(account_id=account.pk, frozen=True, reason=f"frozen by staff {request.user.pk}")
        self.message_user(request, f"Froze {queryset.count()} account(s).")

    @admin.action(description="Unfreeze selected accounts")
    def unfreeze(self, request, queryset):
        for account in queryset:
            services.set_frozen(account_id=account.pk, frozen=False)
        self.message_user(request, f"Unfroze {queryset.count()} account(s).")


class LegInline(admin.TabularInline):
    model = Leg
    fields = ("account", "amount", "balance_after")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(JournalEntry)
class JournalEntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "memo", "hold", "reverses", "initiated_by", "created_at")
    list_filter = ("kind",)
    search_fields = ("memo",)
    inlines = [LegInline]
    actions = ["reverse"]

    @admin.action(description="Reverse selected entries (posts correcting entries)")
    def reverse(self, request, queryset):
        for entry in queryset:
            try:
                services.reverse_entry(entry_id=entry.pk, idempotency_key=f"admin:reverse:{entry.pk}",
                                       initiated_by_id=request.user.pk)
            except DomainError as exc:
                self.message_user(request, f"Entry #{entry.pk}: {exc.code} {exc.message}", level=messages.ERROR)
            else:
                self.message_user(request, f"Entry #{entry.pk} reversed.")


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "source", "destination", "amount", "posted_amount", "status", "created_at",
                    "expires_at", "resolved_at")
    list_filter = ("status", "kind")


@admin.register(BankOperation)
class BankOperationAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "account", "amount", "status", "failure_code", "created_at", "last_sent_at",
                    "settled_at")
    list_filter = ("kind", "status")


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyAdmin):
    list_display = ("id", "scope", "key", "operation", "entry", "hold", "bank_operation", "created_at")
    search_fields = ("scope", "key")


@admin.register(SandboxBankRecord)
class SandboxBankRecordAdmin(ReadOnlyAdmin):
    """SANDBOX ONLY: what the sandbox bank received (plays the bank's side; not part of the ledger)."""

    list_display = ("id", "operation", "reference", "amount", "succeeded", "failure_code", "times_received",
                    "created_at")


class RiskListEntryForm(forms.ModelForm):
    """Staff type the reported phone number; only its blind index and a masked form are stored."""

    phone = forms.CharField(required=False, help_text="The reported phone number (stored as a blind index).")

    class Meta:
        model = RiskListEntry
        fields = ["account", "phone", "source", "level", "reported_on", "note", "is_active"]

    def clean(self):
        data = super().clean()
        phone = (data.get("phone") or "").strip()
        if phone:
            try:
                self.instance.phone_index = phone_index(phone)
            except DomainError as exc:
                raise forms.ValidationError({"phone": exc.message}) from exc
            self.instance.phone_masked = mask_phone(normalize_phone(phone))
        if not data.get("account") and not self.instance.phone_index:
            raise forms.ValidationError("Give the reported wallet, a phone number, or both.")
        return data


class RiskListChangeInline(admin.TabularInline):
    model = RiskListChange
    extra = 0
    can_delete = False
    readonly_fields = ("action", "actor", "snapshot", "at")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(RiskListEntry)
class RiskListEntryAdmin(admin.ModelAdmin):
    """融安e信 risk list. Entries are never deleted (deactivate instead); every save is in the audit trail."""

    form = RiskListEntryForm
    list_display = ("id", "level", "source", "account", "phone_masked", "reported_on", "is_active", "created_at")
    list_filter = ("level", "source", "is_active")
    raw_id_fields = ("account",)
    inlines = [RiskListChangeInline]

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        RiskListChange.objects.create(
            entry=obj, actor=request.user, action="changed" if change else "added",
            snapshot={"account": obj.account_id, "phone_masked": obj.phone_masked, "source": obj.source,
                      "level": obj.level, "reported_on": obj.reported_on.isoformat(), "note": obj.note,
                      "is_active": obj.is_active},
        )
