"""The zero-sum trigger's error names it (diag constraint_name), so code can tell it apart.

credits.services posts a one-wallet transaction with the wallet's lock taken last; when the
wallet is emptied between the statement's check and its lock, this error is how the commit
is refused, and credits.services.is_unbalanced_commit reports it as the refusal it is.
"""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION credits_check_transaction_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    total bigint;
BEGIN
    SELECT COALESCE(SUM(amount), 0) INTO total FROM credits_entry WHERE transaction_id = NEW.transaction_id;
    IF total <> 0 THEN
        RAISE EXCEPTION 'credits: the entries of transaction % sum to %, not zero', NEW.transaction_id, total
            USING ERRCODE = 'check_violation', CONSTRAINT = '{constraint}';
    END IF;
    RETURN NULL;
END;
$$;
"""


def name_the_constraint(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION.replace("{constraint}", "credits_entry_zero_sum"), params=None)


def unname_the_constraint(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION.replace(", CONSTRAINT = '{constraint}'", ""), params=None)


class Migration(migrations.Migration):
    dependencies = [("credits", "0004_ledger_triggers")]
    operations = [migrations.RunPython(name_the_constraint, unname_the_constraint)]
