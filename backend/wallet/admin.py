"""Operations' view of the ledger. Balances and entries are read-only here: money moves only via services."""

from __future__ import annotations

from django.contrib import admin, messages

from backend.core.errors import DomainError

from . import services
from .models import (
    BankOperation,
    Hold,
    IdempotencyRecord,
    JournalEntry,
    LedgerAccount,
    Leg,
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
