"""Operations' back office for client managers: managers and their load, customers (tier, tags, manager),
assignments (made through the assignment service, so the conversation and the customer's notice follow),
service accounts, broadcasts with their counts, and the product catalog. Every write is in the audit log
(core.audit.AuditedAdmin)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect

from backend.core.audit import AuditedAdmin, ReadOnlyAdminMixin
from backend.core.errors import DomainError

from . import selectors, services
from .models import Assignment, Broadcast, CustomerRecord, ManagerProfile, Product, ServiceAccount


@admin.register(ManagerProfile)
class ManagerProfileAdmin(AuditedAdmin):
    list_display = ("user", "branch", "capacity", "load", "accepting", "timezone", "office_opens", "office_closes")
    list_filter = ("branch", "accepting")
    raw_id_fields = ("user",)
    readonly_fields = ("last_assigned_at",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")

    @admin.display(description="customers")
    def load(self, obj: ManagerProfile) -> int:
        return Assignment.objects.filter(manager_id=obj.user_id, ended_at__isnull=True).count()


@admin.register(CustomerRecord)
class CustomerRecordAdmin(AuditedAdmin):
    list_display = ("customer", "branch", "tier", "manager", "tier_computed_at")
    list_filter = ("tier", "branch")
    raw_id_fields = ("customer",)
    readonly_fields = ("tier", "tier_inputs", "tier_computed_at", "conversation")
    actions = ["assign_by_branch", "assign_round_robin"]

    @admin.display(description="client manager")
    def manager(self, obj: CustomerRecord) -> str:
        assignment = Assignment.objects.select_related("manager").filter(customer_id=obj.customer_id,
                                                                          ended_at__isnull=True).first()
        return assignment.manager.display_name if assignment else "—"

    def _assign(self, request, queryset, method: str) -> None:
        done = 0
        for record in queryset:
            try:
                services.assign_customer(customer_id=record.customer_id, method=method, actor=request.user)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{record.customer}: {exc.message}", messages.WARNING)
        self.message_user(request, f"{done} customer(s) assigned.")

    @admin.action(description="Assign a manager of the customer's branch (round-robin)")
    def assign_by_branch(self, request, queryset):
        self._assign(request, queryset, Assignment.Method.BRANCH)

    @admin.action(description="Assign a manager round-robin (any branch)")
    def assign_round_robin(self, request, queryset):
        self._assign(request, queryset, Assignment.Method.ROUND_ROBIN)


class AssignmentForm(forms.ModelForm):
    class Meta:
        model = Assignment
        fields = ("customer", "manager", "reason")


@admin.register(Assignment)
class AssignmentAdmin(AuditedAdmin):
    """Adding an assignment (re)assigns the customer through the service: the previous assignment ends, the new
    manager takes the conversation with its history and the customer is told. Past rows are history."""

    form = AssignmentForm
    list_display = ("customer", "manager", "method", "started_at", "ended_at", "assigned_by")
    list_filter = ("method",)
    raw_id_fields = ("customer", "manager")

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        assignment = services.assign_customer(customer_id=obj.customer_id, manager_id=obj.manager_id,
                                              method=Assignment.Method.ADMIN, actor=request.user, reason=obj.reason)
        for field in Assignment._meta.concrete_fields:
            setattr(obj, field.attname, getattr(assignment, field.attname))
        obj._state.adding = False

    def add_view(self, request, form_url="", extra_context=None):
        try:
            return super().add_view(request, form_url, extra_context)
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.path)


class ServiceAccountForm(forms.ModelForm):
    name = forms.CharField(max_length=64, help_text="The verified sender name users see, e.g. “Wallet”.")

    class Meta:
        model = ServiceAccount
        fields = ("slug", "category", "description")


@admin.register(ServiceAccount)
class ServiceAccountAdmin(AuditedAdmin):
    list_display = ("slug", "sender_name", "category", "subscribers", "created_at")
    list_filter = ("category",)

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ServiceAccountForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return ("slug", "user", "created_at") if obj is not None else ()

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        created = services.create_service_account(slug=obj.slug, name=form.cleaned_data["name"],
                                                  category=obj.category, description=obj.description)
        for field in ServiceAccount._meta.concrete_fields:
            setattr(obj, field.attname, getattr(created, field.attname))
        obj._state.adding = False

    @admin.display(description="name")
    def sender_name(self, obj: ServiceAccount) -> str:
        return obj.user.display_name

    @admin.display(description="subscribers")
    def subscribers(self, obj: ServiceAccount) -> int:
        return obj.subscriptions.filter(unsubscribed_at__isnull=True).count()


@admin.register(Broadcast)
class BroadcastAdmin(ReadOnlyAdminMixin, AuditedAdmin):
    """Broadcasts are sent through the API (managers and operations); here operations read their reach."""

    list_display = ("id", "service_account", "sender", "target", "status", "audience_count", "delivered_count",
                    "read", "capped_count", "unsubscribed_count", "created_at")
    list_filter = ("status", "target")

    @admin.display(description="read")
    def read(self, obj: Broadcast) -> int:
        return selectors.read_count(obj)


@admin.register(Product)
class ProductAdmin(AuditedAdmin):
    list_display = ("name", "kind", "risk_level", "expected_yield_bps", "min_amount", "active")
    list_filter = ("kind", "risk_level", "active")
    search_fields = ("name",)
