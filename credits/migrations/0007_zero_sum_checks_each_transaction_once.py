"""The zero-sum trigger adds up each transaction once per check, not once per entry.

The trigger fires for every entry at commit, and each call added up all the entries of its
transaction: a usage batch, one transaction with an entry per wallet, would have cost a
sum over the whole transaction for each of its entries. A call now remembers, for the rest
of the database transaction, the ledger transaction it checked and the highest entry id it
saw; a later call for an entry of the same transaction with an id not above that one has
nothing new to check (it was among the rows added up) and returns at once. An entry added
after the check (possible only after SET CONSTRAINTS ... IMMEDIATE, since the checks run at
commit) gets a new, higher id from the sequence and is checked again with the rest.
"""

from django.db import migrations

CHECK_ONCE = """
CREATE OR REPLACE FUNCTION credits_check_transaction_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    checked text := current_setting('credits.zero_sum_checked', true);
    total bigint;
    last_id bigint;
BEGIN
    IF checked LIKE NEW.transaction_id::text || '/%' AND NEW.id <= split_part(checked, '/', 2)::bigint THEN
        RETURN NULL;
    END IF;
    SELECT COALESCE(SUM(amount), 0), max(id) INTO total, last_id
      FROM credits_entry WHERE transaction_id = NEW.transaction_id;
    IF total <> 0 THEN
        RAISE EXCEPTION 'credits: the entries of transaction % sum to %, not zero', NEW.transaction_id, total
            USING ERRCODE = 'check_violation', CONSTRAINT = 'credits_entry_zero_sum';
    END IF;
    PERFORM set_config('credits.zero_sum_checked', NEW.transaction_id::text || '/' || last_id, true);
    RETURN NULL;
END;
$$;
"""

CHECK_EACH = """
CREATE OR REPLACE FUNCTION credits_check_transaction_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    total bigint;
BEGIN
    SELECT COALESCE(SUM(amount), 0) INTO total FROM credits_entry WHERE transaction_id = NEW.transaction_id;
    IF total <> 0 THEN
        RAISE EXCEPTION 'credits: the entries of transaction % sum to %, not zero', NEW.transaction_id, total
            USING ERRCODE = 'check_violation', CONSTRAINT = 'credits_entry_zero_sum';
    END IF;
    RETURN NULL;
END;
$$;
"""


def check_once(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CHECK_ONCE, params=None)


def check_each(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CHECK_EACH, params=None)


class Migration(migrations.Migration):
    dependencies = [("credits", "0006_leaner_ledger_indexes")]
    operations = [migrations.RunPython(check_once, check_each)]
