"""PostgreSQL refuses UPDATE and DELETE on the admin audit log, whoever asks (the model refuses them too;
SQLite has no such triggers and relies on the model)."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION core_audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'admin audit entries are append-only' USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER core_adminauditentry_append_only BEFORE UPDATE OR DELETE ON core_adminauditentry
    FOR EACH ROW EXECUTE FUNCTION core_audit_refuse_change();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS core_adminauditentry_append_only ON core_adminauditentry;
DROP FUNCTION IF EXISTS core_audit_refuse_change();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("core", "0001_admin_audit_log")]

    operations = [migrations.RunPython(forward, backward)]
