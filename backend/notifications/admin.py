"""Operations' view of the outbox: what was pushed, what was skipped and why, what failed; retry a push."""

from django.contrib import admin, messages

from backend.core.audit import AuditedAdmin

from . import services
from .models import ConversationMute, Notification, NotificationPreferences, PushDelivery


class PushDeliveryInline(admin.TabularInline):
    model = PushDelivery
    extra = 0
    can_delete = False
    readonly_fields = ("device", "target", "state", "error", "message_id", "attempts", "updated_at")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Notification)
class NotificationAdmin(AuditedAdmin):
    # The body (message text, amounts) is deliberately not shown: operators see ids and states only.
    list_display = ("id", "recipient_id", "kind", "event", "created_at", "read_at", "push_state", "push_attempts",
                    "push_reason")
    list_filter = ("push_state", "kind")
    search_fields = ("=id", "=recipient__id", "event")
    readonly_fields = ("recipient", "kind", "event", "payload", "conversation_id", "collapse_key", "created_at",
                       "read_at", "push_state", "push_reason", "push_attempts", "push_next_attempt_at",
                       "push_claimed_at", "pushed_at")
    exclude = ("title", "body")
    inlines = [PushDeliveryInline]
    actions = ["retry_push"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Push again (failed or dead only)")
    def retry_push(self, request, queryset):
        retried = sum(services.retry_push(notification_id=pk) for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, f"{retried} push(es) queued again.", messages.SUCCESS)


@admin.register(NotificationPreferences)
class NotificationPreferencesAdmin(AuditedAdmin):
    list_display = ("user_id", "messages", "money", "loans", "circles", "marketing", "show_previews",
                    "quiet_start", "quiet_end", "timezone")
    raw_id_fields = ("user",)


@admin.register(ConversationMute)
class ConversationMuteAdmin(AuditedAdmin):
    list_display = ("user_id", "conversation_id", "muted_until", "created_at")
    raw_id_fields = ("user",)
