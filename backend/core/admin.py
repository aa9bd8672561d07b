"""The audit log in the admin: readable by staff with the view permission, writable by nobody."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.models import Group

from .audit import AuditedAdmin, ReadOnlyAdminMixin
from .models import AdminAuditEntry


@admin.register(AdminAuditEntry)
class AdminAuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "created_at", "actor_label", "action", "action_name", "model_label", "object_id",
                    "object_repr")
    list_filter = ("action", "model_label")
    search_fields = ("=actor_id", "=object_id", "actor_label", "object_repr", "action_name")
    readonly_fields = [f.name for f in AdminAuditEntry._meta.fields]


# Permission groups are changed in the admin too: record them like everything else.
if admin.site.is_registered(Group):
    admin.site.unregister(Group)


@admin.register(Group)
class AuditedGroupAdmin(AuditedAdmin, GroupAdmin):
    pass
