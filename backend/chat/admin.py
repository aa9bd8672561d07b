"""Operations view of chat: conversations and memberships. Message bodies are not shown in lists."""

from django.contrib import admin

from .models import Conversation, Membership, Message


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user", "removed_by"]
    fields = ["user", "role", "last_read_seq", "visible_from_seq", "joined_at", "left_at", "removed_by"]
    readonly_fields = ["last_read_seq", "visible_from_seq", "joined_at"]


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "title", "member_count", "last_seq", "last_activity_at"]
    list_filter = ["kind"]
    search_fields = ["title", "key"]
    raw_id_fields = ["owner"]
    readonly_fields = ["key", "last_seq", "last_change", "last_message", "member_count", "created_at"]
    inlines = [MembershipInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Compliance can open a single message; lists show metadata only."""

    list_display = ["id", "conversation", "seq", "kind", "sender", "created_at", "edited_at", "recalled_at"]
    list_filter = ["kind"]
    raw_id_fields = ["conversation", "sender"]
    readonly_fields = ["conversation", "seq", "sender", "kind", "client_msg_id", "card_kind", "reply_to_seq",
                       "mentions", "created_at", "edited_at", "recalled_at", "change_no"]
    exclude = ["body", "data"]

    def has_add_permission(self, request):
        return False
