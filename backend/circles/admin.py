"""Operations' screens: circles and members, verification requests, abuse reports and the blacklist.

Decisions go through services (so they are the same rules and the same audit as in the app): approving proof
is `decide_verification`, lifting a blacklist entry is `lift_blacklist`, which needs a reason."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Exists, OuterRef

from backend.accounts.admin import UserAdmin as AccountsUserAdmin
from backend.accounts.models import User
from backend.core import clock
from backend.core.audit import AuditedAdmin
from backend.core.errors import DomainError

from . import services
from .models import AbuseReport, BlacklistAudit, BlacklistEntry, Circle, CircleMember, VerificationRequest


class CircleMemberInline(admin.TabularInline):
    model = CircleMember
    extra = 0
    raw_id_fields = ["user", "removed_by", "verified_by"]
    fields = ["user", "role", "joined_at", "left_at", "removed_by", "muted_until", "verified_at", "verified_by",
              "verification_method"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False  # membership changes keep the circle chat in step: only through the services


@admin.register(Circle)
class CircleAdmin(AuditedAdmin):
    list_display = ["id", "name", "kind", "visibility", "join_policy", "member_count", "requires_verification",
                    "created_at"]
    list_filter = ["kind", "visibility", "join_policy", "requires_verification"]
    search_fields = ["name"]
    raw_id_fields = ["owner", "conversation"]
    readonly_fields = ["owner", "conversation", "member_count", "created_at"]
    inlines = [CircleMemberInline]

    def has_add_permission(self, request):
        return False  # a circle needs its owner seat and circle chat: created through the app


@admin.register(VerificationRequest)
class VerificationRequestAdmin(AuditedAdmin):
    list_display = ["id", "circle", "user", "method", "status", "proof_url", "created_at", "decided_by", "decided_at"]
    list_filter = ["status", "method"]
    raw_id_fields = ["circle", "user", "decided_by"]
    readonly_fields = [f.name for f in VerificationRequest._meta.fields]
    exclude = ["code_hash", "email_index"]
    actions = ["approve", "reject"]

    def has_add_permission(self, request):
        return False

    def _decide(self, request, queryset, approve: bool):
        done = 0
        for row in queryset:
            try:
                services.decide_verification(actor=request.user, request_id=row.pk, approve=approve)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"#{row.pk}: {exc.code}", level=messages.WARNING)
        self.message_user(request, f"{done} request(s) {'approved' if approve else 'rejected'}.")

    @admin.action(description="Approve selected proof")
    def approve(self, request, queryset):
        self._decide(request, queryset, True)

    @admin.action(description="Reject selected proof")
    def reject(self, request, queryset):
        self._decide(request, queryset, False)


@admin.register(AbuseReport)
class AbuseReportAdmin(AuditedAdmin):
    list_display = ["id", "reporter", "target_user", "circle", "post", "reason", "status", "created_at"]
    list_filter = ["status"]
    raw_id_fields = ["reporter", "target_user", "circle", "post", "handled_by"]
    readonly_fields = ["reporter", "target_user", "circle", "post", "reason", "created_at", "handled_by", "handled_at"]
    actions = ["mark_handled", "dismiss"]

    def has_add_permission(self, request):
        return False

    def _close(self, request, queryset, status):
        count = queryset.filter(status=AbuseReport.Status.OPEN).update(
            status=status, handled_by=request.user, handled_at=clock.now())
        self.message_user(request, f"{count} report(s) closed.")

    @admin.action(description="Mark handled")
    def mark_handled(self, request, queryset):
        self._close(request, queryset, AbuseReport.Status.HANDLED)

    @admin.action(description="Dismiss")
    def dismiss(self, request, queryset):
        self._close(request, queryset, AbuseReport.Status.DISMISSED)


class BlacklistAuditInline(admin.TabularInline):
    model = BlacklistAudit
    extra = 0
    fields = ["at", "action", "actor", "reason", "details"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class BlacklistEntryForm(forms.ModelForm):
    lift_reason = forms.CharField(required=False, max_length=200,
                                  help_text="Lift the entry: say why (repaid, mistaken, settled). Required to lift.")

    class Meta:
        model = BlacklistEntry
        fields = ["evidence", "lift_reason"]


@admin.register(BlacklistEntry)
class BlacklistEntryAdmin(AuditedAdmin):
    """Entries are created by loans (blacklist_for_default). Staff may add evidence or lift an entry with a
    reason; every change is audited."""

    form = BlacklistEntryForm
    list_display = ["id", "user", "loan_ref", "reason", "created_at", "lifted_at", "lifted_by"]
    list_filter = ["lifted_at"]
    search_fields = ["loan_ref"]
    raw_id_fields = ["user"]
    readonly_fields = ["user", "loan_ref", "reason", "circles_told", "created_at", "lifted_at", "lifted_by"]
    inlines = [BlacklistAuditInline]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="circles told")
    def circles_told(self, obj):
        return ", ".join(c.name for c in obj.circles.all())

    def save_model(self, request, obj, form, change):
        changed = [name for name in form.changed_data if name != "lift_reason"]
        if changed:
            super().save_model(request, obj, form, change)
            services.record_admin_change(entry=obj, actor=request.user, changed=changed)
        reason = form.cleaned_data.get("lift_reason", "")
        if reason and obj.lifted_at is None:
            try:
                services.lift_blacklist(entry=obj, by_staff=request.user, reason=reason)
            except DomainError as exc:
                self.message_user(request, f"Not lifted: {exc.message}", level=messages.ERROR)


# --- the defaulter mark on Operations' user screen ---------------------------------------------------------
# accounts may not import circles (layers contract), so circles extends accounts' registered user admin: the
# same AuditedAdmin subclass with a column, a filter and a read-only field that show the active blacklist mark.

def _active_entries(user_ref):
    return BlacklistEntry.objects.filter(user=user_ref, lifted_at__isnull=True)


class BlacklistedFilter(admin.SimpleListFilter):
    title = "defaulter blacklist"
    parameter_name = "blacklisted"

    def lookups(self, request, model_admin):
        return [("yes", "Blacklisted"), ("no", "Not blacklisted")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(blacklist_active=self.value() == "yes")
        return queryset


class UserWithBlacklistAdmin(AccountsUserAdmin):
    """accounts' user admin plus the defaulter mark (lifted entries do not show)."""

    list_display = (*AccountsUserAdmin.list_display, "blacklist_column")
    list_filter = (*AccountsUserAdmin.list_filter, BlacklistedFilter)
    readonly_fields = (*AccountsUserAdmin.readonly_fields, "blacklist_mark")
    fields = (*AccountsUserAdmin.fields, "blacklist_mark")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            blacklist_active=Exists(_active_entries(OuterRef("pk"))))

    @admin.display(description="blacklist", ordering="blacklist_active")
    def blacklist_column(self, obj) -> str:
        active = getattr(obj, "blacklist_active", None)
        if active is None:
            active = _active_entries(obj.pk).exists()
        return "BLACKLISTED" if active else ""

    @admin.display(description="defaulter blacklist")
    def blacklist_mark(self, obj) -> str:
        """Each active entry (lift it from the blacklist entry screen, with a reason)."""
        rows = _active_entries(obj.pk).order_by("created_at") if obj.pk else []
        return "; ".join(f"BLACKLISTED for loan {e.loan_ref} since {e.created_at:%Y-%m-%d}: {e.reason} (entry #{e.pk})"
                         for e in rows) or "—"


admin.site.unregister(User)
admin.site.register(User, UserWithBlacklistAdmin)
