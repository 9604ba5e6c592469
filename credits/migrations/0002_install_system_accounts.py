from django.db import migrations

SYSTEM_ACCOUNTS = {
    "purchase:stripe": "Purchases via Stripe",
    "purchase:paypal": "Purchases via PayPal",
    "purchase:sandbox": "Purchases via the demo sandbox",
    "grant:subscription": "Subscription grants",
    "grant:promotion": "Promotional grants",
    "revenue:usage": "Usage revenue",
    "refunds": "Refunds",
    "adjustment:admin": "Admin adjustments",
    "expiry": "Expired credits",
    "disputes": "Disputes",
}


def install(apps, schema_editor):
    Account = apps.get_model("credits", "Account")
    for code, name in SYSTEM_ACCOUNTS.items():
        Account.objects.get_or_create(code=code, defaults={"kind": "system", "name": name, "balance": None})


class Migration(migrations.Migration):
    dependencies = [("credits", "0001_initial")]
    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
