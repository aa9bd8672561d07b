from django.contrib import admin

from backend.core import clock
from backend.core.audit import AuditedAdmin, ReadOnlyAdminMixin

from .models import Instalment, Loan, Pledge, RevealAudit
from .services import bucket, days_overdue


class InstalmentInline(admin.TabularInline):
    model = Instalment
    extra = 0
    can_delete = False
    readonly_fields = [f.name for f in Instalment._meta.fields]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Loan)
class LoanAdmin(ReadOnlyAdminMixin, AuditedAdmin):
    """Operations read loans (arrears by status); money only moves through the services."""

    list_display = ["id", "pseudonym", "borrower", "amount", "funded", "status", "rate_bp", "term_months",
                    "disbursed_at", "arrears", "defaulted_at"]
    list_filter = ["status", "method"]
    inlines = [InstalmentInline]

    @admin.display(description="arrears (days, bucket)")
    def arrears(self, loan: Loan) -> str:
        if loan.status not in (Loan.Status.ACTIVE, Loan.Status.DEFAULTED, Loan.Status.WRITTEN_OFF):
            return "-"
        days = days_overdue(loan, clock.now().date())
        return f"{days} ({bucket(days)})" if days else "-"


@admin.register(Pledge)
class PledgeAdmin(ReadOnlyAdminMixin, AuditedAdmin):
    list_display = ["id", "loan", "lender", "amount", "status", "received", "boost_received"]
    list_filter = ["status"]


@admin.register(RevealAudit)
class RevealAuditAdmin(ReadOnlyAdminMixin, AuditedAdmin):
    """The reveal audit: whose identity went to which lender or circle, when and why. Rows are written only by
    the default service; here they are read, never changed (GraphQL `loanReveals` is the same list for staff)."""

    list_display = ["id", "loan", "revealed_user", "to_user", "to_circle", "reason", "revealed_at"]
    list_filter = ["reason"]
    list_select_related = ["loan", "revealed_user", "to_user", "to_circle"]
    date_hierarchy = "revealed_at"
    search_fields = ["loan__pseudonym"]
