"""The back office's audit log: every add, change, delete and action in the Django admin is recorded with
who did it, when, and the values before and after (core.models.AdminAuditEntry, append-only).

Every ModelAdmin derives from `AuditedAdmin` (a test checks that every registered admin does). Secrets are
never copied into the log: encrypted fields and password hashes are recorded as a keyed fingerprint, which
shows *that* they changed without revealing the value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction

from .crypto import EncryptedTextField, keyring
from .models import AdminAuditEntry

Action = AdminAuditEntry.Action
REDACTED_FIELDS = {"password", "code_hash", "token_hash", "fcm_token"}
SKIPPED_ACTIONS = {"delete_selected"}  # it deletes through delete_queryset, which records each row


def _fingerprint(value: object) -> str | None:
    if value in (None, ""):
        return value  # type: ignore[return-value]
    return "redacted:" + keyring().blind_index(str(value), context="core.audit")[:16]


def snapshot(obj: models.Model) -> dict[str, Any]:
    """The row's stored values (JSON-safe); secrets as fingerprints; many-to-many as sorted ids."""
    values: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        value = field.value_from_object(obj)
        if isinstance(field, EncryptedTextField) or field.name in REDACTED_FIELDS:
            value = _fingerprint(value)
        values[field.attname] = value
    if obj.pk is not None:
        for field in obj._meta.many_to_many:
            values[field.name] = sorted(related.pk for related in getattr(obj, field.name).all())
    return json.loads(json.dumps(values, cls=DjangoJSONEncoder))


def _stored(obj: models.Model) -> dict[str, Any]:
    if obj.pk is None:
        return {}
    current = type(obj)._default_manager.filter(pk=obj.pk).first()
    return snapshot(current) if current is not None else {}


def _changed(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    keys = [k for k in after if before.get(k) != after.get(k)] + [k for k in before if k not in after]
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}


def record(*, actor: Any, action: str, obj: models.Model, before: dict | None = None, after: dict | None = None,
           action_name: str = "", note: str = "", only_changes: bool = False) -> AdminAuditEntry:
    """Write one audit row (in the caller's transaction, when there is one)."""
    before, after = before or {}, after or {}
    if only_changes:
        before, after = _changed(before, after)
    return AdminAuditEntry.objects.create(
        actor_id=actor.pk, actor_label=str(actor)[:200], action=action, action_name=action_name[:100],
        model_label=obj._meta.label_lower, object_id=str(obj.pk)[:64], object_repr=str(obj)[:200],
        before=before, after=after, note=note[:500],
    )


class ReadOnlyAdminMixin:
    """Staff may look, nobody may add, change or delete (not even superusers): rows written by services."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AuditedAdmin(admin.ModelAdmin):
    """A ModelAdmin whose every write is recorded: add/change (with inlines), delete, bulk delete, actions."""

    # --- add / change (the object, its many-to-many, its inlines) ----------------------------------------

    def save_model(self, request, obj, form, change):
        request._audit_before = getattr(request, "_audit_before", {})
        request._audit_before[id(obj)] = _stored(obj) if change else None
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        with transaction.atomic():
            super().save_related(request, form, formsets, change)
            obj = form.instance
            before = getattr(request, "_audit_before", {}).pop(id(obj), None)
            if change:
                record(actor=request.user, action=Action.CHANGE, obj=obj, before=before, after=snapshot(obj),
                       only_changes=True)
            else:
                record(actor=request.user, action=Action.ADD, obj=obj, after=snapshot(obj))

    def save_formset(self, request, form, formset, change):
        # The forms' instances already carry the submitted values: read the stored rows.
        pks = [f.instance.pk for f in formset.forms if f.instance.pk is not None]
        before = {obj.pk: snapshot(obj) for obj in formset.model._default_manager.filter(pk__in=pks)}
        super().save_formset(request, form, formset, change)
        for obj in getattr(formset, "new_objects", []):
            record(actor=request.user, action=Action.ADD, obj=obj, after=snapshot(obj),
                   note=f"inline of {form.instance._meta.label_lower} #{form.instance.pk}")
        for obj, _fields in getattr(formset, "changed_objects", []):
            record(actor=request.user, action=Action.CHANGE, obj=obj, before=before.get(obj.pk, {}),
                   after=snapshot(obj), only_changes=True,
                   note=f"inline of {form.instance._meta.label_lower} #{form.instance.pk}")
        for obj in getattr(formset, "deleted_objects", []):
            record(actor=request.user, action=Action.DELETE, obj=obj, before=before.get(obj.pk, {}),
                   note=f"inline of {form.instance._meta.label_lower} #{form.instance.pk}")

    # --- delete ------------------------------------------------------------------------------------------

    def delete_model(self, request, obj):
        with transaction.atomic():
            pk, before = obj.pk, snapshot(obj)
            super().delete_model(request, obj)
            obj.pk = pk
            record(actor=request.user, action=Action.DELETE, obj=obj, before=before)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            doomed = [(obj, obj.pk, snapshot(obj)) for obj in queryset]
            super().delete_queryset(request, queryset)
            for obj, pk, before in doomed:
                obj.pk = pk
                record(actor=request.user, action=Action.DELETE, obj=obj, before=before)

    # --- actions -----------------------------------------------------------------------------------------

    def get_actions(self, request):
        actions = super().get_actions(request)
        return {name: (func if name in SKIPPED_ACTIONS else _audited_action(func, name), name, description)
                for name, (func, name, description) in actions.items()}


def _audited_action(func: Callable, name: str) -> Callable:
    """Wrap an admin action: the selected rows are recorded as they were before and after it ran."""

    def audited(modeladmin, request, queryset):
        selected = list(queryset)
        before = {obj.pk: snapshot(obj) for obj in selected}
        try:
            return func(modeladmin, request, queryset)
        finally:
            manager = modeladmin.model._default_manager
            after = {obj.pk: obj for obj in manager.filter(pk__in=list(before))}
            for obj in selected:
                current = after.get(obj.pk)
                record(actor=request.user, action=Action.ACTION, action_name=name, obj=current or obj,
                       before=before[obj.pk], after=snapshot(current) if current is not None else {},
                       only_changes=True)

    audited.__name__ = getattr(func, "__name__", name)
    for attribute in ("short_description", "allowed_permissions"):
        if hasattr(func, attribute):
            setattr(audited, attribute, getattr(func, attribute))
    return audited
