from decimal import Decimal

from django.db import models


class Plan(models.Model):
    """A plan and its quotas, as data staff edit in the admin. Every organization is on one."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    monthly_price = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0.00"))
    monthly_credits = models.PositiveIntegerField(default=0)
    allows_all_query_types = models.BooleanField(default=False)
    allowed_query_types = models.JSONField(
        default=list, blank=True, help_text='Query types allowed when not all are, e.g. ["standard"].'
    )
    max_api_keys = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no limit.")
    requests_per_minute = models.PositiveIntegerField(default=60)
    subscriber_discount_percent = models.DecimalField(
        max_digits=5, decimal_places=2, default=Decimal("0.00"), help_text="Off extra credit purchases."
    )
    is_active = models.BooleanField(default=True)
    sort_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "monthly_price"]
        constraints = [
            models.CheckConstraint(condition=models.Q(monthly_price__gte=0), name="billing_plan_price_nonneg"),
            models.CheckConstraint(
                condition=models.Q(subscriber_discount_percent__gte=0, subscriber_discount_percent__lte=100),
                name="billing_plan_discount_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def allows_query_type(self, query_type: str) -> bool:
        return self.allows_all_query_types or query_type in self.allowed_query_types
