"""Operations' view of the ledger. Balances and entries are read-only here: money moves only via services."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.urls import reverse

from backend.accounts.models import phone_index
from backend.core.audit import AuditedAdmin, ReadOnlyAdminMixin
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
    ReversalRequest,
    RiskListChange,
    RiskListEntry,
    SandboxBankRecord,
)


class ReadOnlyAdmin(ReadOnlyAdminMixin, AuditedAdmin):
    pass


@admin.register(LedgerAccount)
class LedgerAccountAdmin(AuditedAdmin):
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
    actions = ["request_reversal"]

    @admin.action(description="Request a reversal (another staff member must approve it)")
    def request_reversal(self, request, queryset):
        """Reversals are maker–checker: this only opens the request form, which asks for the reason."""
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one entry.", level=messages.ERROR)
            return None
        return HttpResponseRedirect(f"{reverse('admin:wallet_reversalrequest_add')}?entry={queryset.get().pk}")


class ReversalRequestForm(forms.ModelForm):
    class Meta:
        model = ReversalRequest
        fields = ["entry", "reason"]
        widgets = {"reason": forms.Textarea(attrs={"rows": 3})}

    def clean(self):
        cleaned = super().clean()
        entry = cleaned.get("entry")
        if entry is not None:
            try:
                cleaned["reason"] = services.check_reversal_request(entry_id=entry.pk, reason=cleaned.get("reason"))
            except DomainError as exc:
                raise ValidationError(f"{exc.code}: {exc.message}") from exc
        return cleaned


@admin.register(ReversalRequest)
class ReversalRequestAdmin(AuditedAdmin):
    """Maker–checker: the maker files a request with a reason; a different staff member approves (posting the
    reversal through the wallet service, once) or rejects it. Requests are never edited or deleted."""

    form = ReversalRequestForm
    list_display = ("id", "entry", "status", "requested_by", "requested_at", "decided_by", "decided_at", "reversal",
                    "reason")
    list_filter = ("status",)
    raw_id_fields = ("entry",)
    actions = ["approve", "reject"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return [f.name for f in ReversalRequest._meta.fields]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_approve_permission(self, request):
        return request.user.has_perm("wallet.approve_reversalrequest")

    def save_model(self, request, obj, form, change):
        filed = services.request_reversal(entry_id=obj.entry_id, requested_by=request.user, reason=obj.reason)
        obj.pk, obj.requested_by, obj.requested_at, obj.status = filed.pk, filed.requested_by, filed.requested_at, \
            filed.status
        obj._state.adding = False

    def _decide(self, request, queryset, decide, done: str):
        for pk in queryset.values_list("pk", flat=True):
            try:
                decide(request_id=pk, staff=request.user)
            except DomainError as exc:
                self.message_user(request, f"Request #{pk}: {exc.code} {exc.message}", level=messages.ERROR)
            else:
                self.message_user(request, f"Request #{pk} {done}.")

    @admin.action(description="Approve selected requests (posts the reversals)", permissions=["approve"])
    def approve(self, request, queryset):
        self._decide(request, queryset, lambda request_id, staff: services.approve_reversal(
            request_id=request_id, approver=staff), "approved and reversed")

    @admin.action(description="Reject selected requests", permissions=["approve"])
    def reject(self, request, queryset):
        self._decide(request, queryset, lambda request_id, staff: services.reject_reversal(
            request_id=request_id, checker=staff), "rejected")


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
class RiskListEntryAdmin(AuditedAdmin):
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
