"""Operations view of chat: conversations and memberships. Message bodies are not shown in lists."""

from django import forms
from django.contrib import admin, messages

from backend.core import audit
from backend.core.audit import AuditedAdmin
from backend.core.errors import DomainError

from . import services
from .models import Conversation, Membership, Message


class MembershipInline(admin.TabularInline):
    """Read-only: a seat written here would skip the system message and open the whole history to the new
    member. Staff add people with the conversation's "Add members" field, which goes through
    chat.services.add_members (a system message; history visible from the join on, as in the app)."""

    model = Membership
    extra = 0
    can_delete = False
    fields = ["user", "role", "last_read_seq", "visible_from_seq", "joined_at", "left_at", "removed_by"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ConversationAdminForm(forms.ModelForm):
    add_members = forms.CharField(
        required=False, label="Add members",
        help_text="User ids, comma-separated (group conversations only). They are announced by a system message "
                  "and see the history from their join on.",
    )

    class Meta:
        model = Conversation
        fields = ["kind", "title", "owner"]

    def clean_add_members(self) -> list[int]:
        raw = [part.strip() for part in (self.cleaned_data.get("add_members") or "").split(",") if part.strip()]
        if not raw:
            return []
        if not all(part.isdigit() for part in raw) or len(raw) > 100:
            raise forms.ValidationError("Give up to 100 numeric user ids, separated by commas.")
        kind = self.instance.kind if self.instance.pk else self.cleaned_data.get("kind")
        if kind != Conversation.Kind.GROUP:
            raise forms.ValidationError("Members can be added here to group conversations only.")
        return [int(part) for part in raw]


@admin.register(Conversation)
class ConversationAdmin(AuditedAdmin):
    list_display = ["id", "kind", "title", "member_count", "last_seq", "last_activity_at"]
    list_filter = ["kind"]
    search_fields = ["title", "key"]
    raw_id_fields = ["owner"]
    readonly_fields = ["key", "last_seq", "last_change", "last_message", "member_count", "created_at"]
    inlines = [MembershipInline]
    form = ConversationAdminForm

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        user_ids = form.cleaned_data.get("add_members") or []
        if user_ids:
            try:
                services.add_members(conversation_id=form.instance.pk, actor=None, user_ids=user_ids)
            except DomainError as exc:
                self.message_user(request, f"Members not added: {exc.code} {exc.message}", level=messages.ERROR)
            else:
                audit.record(actor=request.user, action=audit.Action.ACTION, action_name="add_members",
                             obj=form.instance, after={"added_user_ids": user_ids})
                self.message_user(request, f"Added user(s) {', '.join(map(str, user_ids))}.")


@admin.register(Message)
class MessageAdmin(AuditedAdmin):
    """Compliance can open a single message; lists show metadata only."""

    list_display = ["id", "conversation", "seq", "kind", "sender", "created_at", "edited_at", "recalled_at"]
    list_filter = ["kind"]
    raw_id_fields = ["conversation", "sender"]
    readonly_fields = ["conversation", "seq", "sender", "kind", "client_msg_id", "card_kind", "reply_to_seq",
                       "mentions", "created_at", "edited_at", "recalled_at", "change_no"]
    exclude = ["body", "data"]

    def has_add_permission(self, request):
        return False
