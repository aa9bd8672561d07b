from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from backend.core import clientip
from backend.core.audit import AuditedAdmin
from backend.core.errors import RateLimited
from backend.core.phone import mask_phone

from . import services
from .models import Device, OtpChallenge, RefreshToken, User, normalize_id_number


class UserAdminForm(forms.ModelForm):
    verified_id_number = forms.CharField(
        required=False, max_length=30, label="Verified ID number",
        help_text="After checking the customer's identity document: the number is not stored, only its keyed "
                  "blind index, and the KYC level becomes verified.")

    class Meta:
        model = User
        fields = ("display_name", "avatar_url", "role", "kyc_level", "is_active", "is_staff", "is_superuser")

    def clean_verified_id_number(self) -> str:
        value = self.cleaned_data.get("verified_id_number", "").strip()
        if value and normalize_id_number(value) is None:
            raise ValidationError(services.IdNumberInvalid.default_message)
        return value


@admin.register(User)
class UserAdmin(AuditedAdmin):
    form = UserAdminForm
    list_display = ("id", "display_name", "masked_phone", "role", "kyc_level", "is_active", "date_joined")
    list_filter = ("role", "kyc_level", "is_active", "is_staff")
    search_fields = ("display_name",)
    readonly_fields = ("phone_index", "id_number_on_file", "date_joined", "last_login", "password", "devices")
    fields = ("display_name", "avatar_url", "role", "kyc_level", "verified_id_number", "id_number_on_file",
              "is_active", "is_staff", "is_superuser", "phone_index", "password", "date_joined", "last_login",
              "devices")

    @admin.display(description="ID number on file")
    def id_number_on_file(self, obj: User) -> str:
        return "yes (blind index only)" if obj.id_number_index else "no"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        number = form.cleaned_data.get("verified_id_number")
        if number:
            verified = services.record_identity_verification(user=obj, id_number=number)
            obj.kyc_level, obj.id_number_index = verified.kyc_level, verified.id_number_index

    @admin.display(description="devices")
    def devices(self, obj: User) -> str:
        """The user's signed-in installations (sign one out from the Device admin)."""
        rows = obj.devices.filter(revoked_at__isnull=True).order_by("-last_seen_at") if obj.pk else []
        return "; ".join(f"{d.platform} {d.name or d.pk}, last seen {d.last_seen_at:%Y-%m-%d %H:%M}" for d in rows) \
            or "—"

    @admin.display(description="phone")
    def masked_phone(self, obj: User) -> str:
        return mask_phone(obj.phone or "")

    def get_search_results(self, request, queryset, search_term):
        """Staff can find a user by full phone number through the blind index."""
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        from .models import phone_index

        try:
            queryset |= self.model.objects.filter(phone_index=phone_index(search_term))
        except Exception:
            pass
        return queryset, may_have_duplicates


@admin.register(Device)
class DeviceAdmin(AuditedAdmin):
    list_display = ("id", "user", "platform", "name", "push_enabled", "last_seen_at", "revoked_at", "revoked_reason")
    list_filter = ("platform", "push_enabled")
    raw_id_fields = ("user",)
    readonly_fields = ("created_at", "last_seen_at")


@admin.register(OtpChallenge)
class OtpChallengeAdmin(AuditedAdmin):
    list_display = ("id", "created_at", "expires_at", "attempts", "consumed_at", "requested_ip")
    readonly_fields = [f.name for f in OtpChallenge._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(RefreshToken)
class RefreshTokenAdmin(AuditedAdmin):
    list_display = ("id", "device", "created_at", "expires_at", "rotated_at", "revoked_at")
    readonly_fields = [f.name for f in RefreshToken._meta.fields]

    def has_add_permission(self, request):
        return False


class PhoneAdminLoginForm(AdminAuthenticationForm):
    """Operations staff sign in to the admin with their phone number and password; attempts are limited per
    phone and per client address like the app's logins."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["username"].label = "Phone number"

    def clean(self):
        phone = self.cleaned_data.get("username") or ""
        try:
            services.check_admin_login_limits(phone=phone, ip=clientip.from_request(self.request))
        except RateLimited as exc:
            raise ValidationError(f"Too many sign-in attempts. Try again in {exc.retry_after} seconds.",
                                  code="rate_limited") from exc
        return super().clean()


admin.site.login_form = PhoneAdminLoginForm
admin.site.site_header = "Quanzi operations"
admin.site.site_title = "Quanzi operations"
