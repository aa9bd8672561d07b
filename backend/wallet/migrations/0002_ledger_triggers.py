"""PostgreSQL-only guards the ORM cannot express.

- A deferred constraint trigger checks, at commit, that every journal entry touched in the transaction has
  at least two legs and that they sum to zero. Deferred, because the legs are inserted one statement after
  the entry; at commit the whole entry must balance or the transaction fails.
- Triggers refuse UPDATE and DELETE on entries and legs: they are immutable, corrections are new entries.

SQLite has neither; there the same rules are kept by the code and checked by `manage.py reconcile_ledger`.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION wallet_check_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    entry bigint;
    total numeric;
    legs integer;
BEGIN
    IF TG_TABLE_NAME = 'wallet_leg' THEN entry := NEW.entry_id; ELSE entry := NEW.id; END IF;
    SELECT COALESCE(SUM(amount), 0), COUNT(*) INTO total, legs FROM wallet_leg WHERE entry_id = entry;
    IF legs < 2 OR total <> 0 THEN
        RAISE EXCEPTION 'journal entry % is unbalanced: % legs summing to %', entry, legs, total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER wallet_leg_entry_balanced
    AFTER INSERT ON wallet_leg DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION wallet_check_entry_balanced();

CREATE CONSTRAINT TRIGGER wallet_journalentry_balanced
    AFTER INSERT ON wallet_journalentry DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION wallet_check_entry_balanced();

CREATE OR REPLACE FUNCTION wallet_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are immutable: post a correcting entry instead', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER wallet_leg_immutable BEFORE UPDATE OR DELETE ON wallet_leg
    FOR EACH ROW EXECUTE FUNCTION wallet_refuse_change();

CREATE TRIGGER wallet_journalentry_immutable BEFORE UPDATE OR DELETE ON wallet_journalentry
    FOR EACH ROW EXECUTE FUNCTION wallet_refuse_change();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS wallet_journalentry_immutable ON wallet_journalentry;
DROP TRIGGER IF EXISTS wallet_leg_immutable ON wallet_leg;
DROP FUNCTION IF EXISTS wallet_refuse_change();
DROP TRIGGER IF EXISTS wallet_journalentry_balanced ON wallet_journalentry;
DROP TRIGGER IF EXISTS wallet_leg_entry_balanced ON wallet_leg;
DROP FUNCTION IF EXISTS wallet_check_entry_balanced();
"""


def _run(schema_editor, sql: str) -> None:
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(sql)  # no params: the % in RAISE messages are PL/pgSQL's, not placeholders


def forward(apps, schema_editor):
    _run(schema_editor, FORWARD)


def backward(apps, schema_editor):
    _run(schema_editor, BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("wallet", "0001_initial")]

    operations = [migrations.RunPython(forward, backward)]
