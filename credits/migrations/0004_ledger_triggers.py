"""PostgreSQL guards for the ledger (no-ops on other databases, where the services check the same rules).

- `credits_entry_zero_sum`: a CONSTRAINT TRIGGER, DEFERRABLE INITIALLY DEFERRED, so the
  entries of a transaction may be inserted one by one; at commit every transaction that
  received entries must sum to zero, or the commit fails (SQLSTATE 23514, an IntegrityError).
- `credits_entry_append_only` and `credits_transaction_append_only`: UPDATE and DELETE are
  refused row by row (SQLSTATE 23001). TRUNCATE fires no row trigger, so test flushes work;
  a mistake is corrected by posting a reversal.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION credits_check_transaction_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    total bigint;
BEGIN
    SELECT COALESCE(SUM(amount), 0) INTO total FROM credits_entry WHERE transaction_id = NEW.transaction_id;
    IF total <> 0 THEN
        RAISE EXCEPTION 'credits: the entries of transaction % sum to %, not zero', NEW.transaction_id, total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER credits_entry_zero_sum
    AFTER INSERT ON credits_entry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION credits_check_transaction_balanced();

CREATE OR REPLACE FUNCTION credits_forbid_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'credits: % rows are append-only (% refused); post a reversal instead', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER credits_entry_append_only
    BEFORE UPDATE OR DELETE ON credits_entry
    FOR EACH ROW EXECUTE FUNCTION credits_forbid_change();

CREATE TRIGGER credits_transaction_append_only
    BEFORE UPDATE OR DELETE ON credits_transaction
    FOR EACH ROW EXECUTE FUNCTION credits_forbid_change();
"""

REVERSE = """
DROP TRIGGER IF EXISTS credits_transaction_append_only ON credits_transaction;
DROP TRIGGER IF EXISTS credits_entry_append_only ON credits_entry;
DROP TRIGGER IF EXISTS credits_entry_zero_sum ON credits_entry;
DROP FUNCTION IF EXISTS credits_forbid_change();
DROP FUNCTION IF EXISTS credits_check_transaction_balanced();
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(REVERSE, params=None)


class Migration(migrations.Migration):
    dependencies = [("credits", "0003_low_credit_alert")]
    operations = [migrations.RunPython(install, uninstall)]
