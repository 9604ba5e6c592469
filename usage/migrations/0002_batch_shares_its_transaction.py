"""A batch of usage events is charged by one ledger transaction: UsageEvent.transaction is a
foreign key (it was one-to-one), indexed for the lookups from a transaction to its events."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("credits", "0007_zero_sum_checks_each_transaction_once"),
        ("usage", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="usageevent",
            name="transaction",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="usage_events", to="credits.transaction"
            ),
        ),
    ]
