from decimal import Decimal

from django.db import migrations

# name, credits, price
PACKAGES = [
    ("Small pack", 100, "9.00"),
    ("Medium pack", 500, "42.50"),
    ("Large pack", 2000, "160.00"),
]
# min credits, percent off custom amounts
TIERS = [(1000, "5"), (5000, "10"), (20000, "15")]


def install_pricing(apps, schema_editor):
    CreditPackage = apps.get_model("billing", "CreditPackage")
    BulkDiscountTier = apps.get_model("billing", "BulkDiscountTier")
    for order, (name, credits, price) in enumerate(PACKAGES):
        CreditPackage.objects.update_or_create(
            name=name, defaults={"credits": credits, "price": Decimal(price), "active": True, "sort_order": order}
        )
    for min_credits, percent in TIERS:
        BulkDiscountTier.objects.update_or_create(min_credits=min_credits, defaults={"percent": Decimal(percent)})


class Migration(migrations.Migration):
    dependencies = [("billing", "0003_pricing_quotes_purchases")]
    operations = [migrations.RunPython(install_pricing, migrations.RunPython.noop)]
