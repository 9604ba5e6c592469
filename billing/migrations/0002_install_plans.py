from decimal import Decimal

from django.db import migrations

PLANS = [
    # code, name, price, monthly credits, all query types, max keys, rpm, subscriber discount %
    ("free", "Free", "0.00", 0, False, 2, 60, "0"),
    ("starter", "Starter", "19.99", 200, False, 5, 300, "5"),
    ("professional", "Professional", "49.99", 600, True, 20, 1000, "10"),
    ("enterprise", "Enterprise", "99.99", 1500, True, None, 5000, "15"),
]


def install_plans(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    for order, (code, name, price, credits, all_types, max_keys, rpm, discount) in enumerate(PLANS):
        Plan.objects.update_or_create(
            code=code,
            defaults={
                "name": name,
                "monthly_price": Decimal(price),
                "monthly_credits": credits,
                "allows_all_query_types": all_types,
                "allowed_query_types": [] if all_types else ["standard"],
                "max_api_keys": max_keys,
                "requests_per_minute": rpm,
                "subscriber_discount_percent": Decimal(discount),
                "sort_order": order,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(install_plans, migrations.RunPython.noop)]
