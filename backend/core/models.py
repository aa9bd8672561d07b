"""Models of core: the back office's audit log."""

from __future__ import annotations

from django.db import models

from . import clock


class AppendOnly(Exception):
    """Audit rows are written once; nothing (staff, code, the admin) may change or remove them."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnly("admin audit entries cannot be changed")

    def delete(self):
        raise AppendOnly("admin audit entries cannot be deleted")


class AdminAuditEntry(models.Model):
    """One change made through the Django admin: who, what, when, and the values before and after.

    Written by core.audit.AuditedAdmin for every add, change, delete and action of every admin. The actor and
    target are stored as plain values, not foreign keys, so deleting either later rewrites nothing here. The
    model refuses updates and deletes; on PostgreSQL a trigger refuses them too (migration 0002).
    """

    class Action(models.TextChoices):
        ADD = "add"
        CHANGE = "change"
        DELETE = "delete"
        ACTION = "action"  # an admin action (freeze, approve a reversal, ...); `action_name` says which

    created_at = models.DateTimeField(default=clock.now, db_index=True)
    actor_id = models.BigIntegerField(db_index=True)
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=10, choices=Action.choices)
    action_name = models.CharField(max_length=100, blank=True)
    model_label = models.CharField(max_length=100, db_index=True, help_text="app_label.model_name")
    object_id = models.CharField(max_length=64, db_index=True)
    object_repr = models.CharField(max_length=200)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    note = models.CharField(max_length=500, blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name = "admin audit entry"
        verbose_name_plural = "admin audit log"

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.model_label} #{self.object_id}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnly("admin audit entries cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnly("admin audit entries cannot be deleted")
