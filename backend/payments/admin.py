"""Operations' view of money in chat. Read-only: state changes only through the services (and so the ledger)."""

from __future__ import annotations

from django.contrib import admin

from backend.wallet.admin import ReadOnlyAdmin

from .models import Bill, FriendTransfer, RedPacket, RedPacketGrab, Settlement, SettlementTransfer, Share


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class GrabInline(ReadOnlyInline):
    model = RedPacketGrab
    fields = ("index", "user", "amount", "entry", "created_at")
    readonly_fields = fields


@admin.register(RedPacket)
class RedPacketAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "sender", "conversation", "total", "count", "grabbed_count", "grabbed_amount",
                    "refunded_amount", "status", "created_at", "expires_at")
    list_filter = ("status", "kind")
    search_fields = ("sender__display_name",)
    exclude = ("seed",)  # secret while the packet is open; the card publishes it when it closes
    inlines = [GrabInline]


@admin.register(FriendTransfer)
class FriendTransferAdmin(ReadOnlyAdmin):
    list_display = ("id", "sender", "recipient", "amount", "status", "created_at", "expires_at", "resolved_at")
    list_filter = ("status",)
    search_fields = ("sender__display_name", "recipient__display_name")


class ShareInline(ReadOnlyInline):
    model = Share
    fields = ("participant", "amount", "status", "entry", "refund_entry", "settlement", "paid_at")
    readonly_fields = fields


@admin.register(Bill)
class BillAdmin(ReadOnlyAdmin):
    list_display = ("id", "title", "creator", "conversation", "total", "method", "status", "refunded_on_cancel",
                    "created_at")
    list_filter = ("status", "method")
    search_fields = ("title", "creator__display_name")
    inlines = [ShareInline]


class SettlementTransferInline(ReadOnlyInline):
    model = SettlementTransfer
    fields = ("debtor", "creditor", "amount", "status", "entry", "paid_at")
    readonly_fields = fields


@admin.register(Settlement)
class SettlementAdmin(ReadOnlyAdmin):
    list_display = ("id", "conversation", "created_by", "status", "created_at", "completed_at")
    list_filter = ("status",)
    inlines = [SettlementTransferInline]
