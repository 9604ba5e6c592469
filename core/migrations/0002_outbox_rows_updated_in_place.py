from django.db import migrations, models


def leave_room_for_in_place_updates(apps, schema_editor):
    # Half-full pages keep a row's new versions on its own page (heap-only tuples, pruned
    # without VACUUM) even when several sessions re-stamp rows of the same page at once.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE core_outboxitem SET (fillfactor = 50)")


def fill_pages(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE core_outboxitem RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="outboxitem",
            name="pushed_at",
            field=models.DateTimeField(blank=True, help_text="The changed_at stamp last pushed to Redis.", null=True),
        ),
        migrations.RunPython(leave_room_for_in_place_updates, fill_pages),
    ]
