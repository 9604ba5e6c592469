"""Shapes of the customer billing API: strict JSON types at the edge, camelCase names."""

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from billing.pricing import money_str


class DiscountSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["bulk", "subscriber", "promotion"])
    label = serializers.CharField()
    amount = serializers.CharField(help_text='Decimal string, e.g. "5.00".')


class QuoteSerializer(serializers.Serializer):
    quoteId = serializers.UUIDField(source="pk")
    credits = serializers.IntegerField()
    bonusCredits = serializers.IntegerField(source="bonus_credits")
    subtotal = serializers.SerializerMethodField()
    discounts = DiscountSerializer(many=True)
    total = serializers.SerializerMethodField()
    currency = serializers.CharField()
    expiresAt = serializers.DateTimeField(source="expires_at")

    def get_subtotal(self, quote) -> str:
        return money_str(quote.subtotal)

    def get_total(self, quote) -> str:
        return money_str(quote.total)


def money(value: Decimal) -> str:
    return money_str(value)


def plan_data(plan) -> dict[str, Any]:
    return {
        "code": plan.code,
        "name": plan.name,
        "monthlyPrice": money_str(plan.monthly_price),
        "monthlyCredits": plan.monthly_credits,
        "currency": "usd",
        "allowsAllQueryTypes": plan.allows_all_query_types,
        "allowedQueryTypes": [] if plan.allows_all_query_types else list(plan.allowed_query_types),
        "maxApiKeys": plan.max_api_keys,
        "requestsPerMinute": plan.requests_per_minute,
        "subscriberDiscountPercent": money_str(plan.subscriber_discount_percent),
    }


class PlanSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    monthlyPrice = serializers.CharField()
    monthlyCredits = serializers.IntegerField()
    currency = serializers.CharField()
    allowsAllQueryTypes = serializers.BooleanField()
    allowedQueryTypes = serializers.ListField(child=serializers.CharField())
    maxApiKeys = serializers.IntegerField(allow_null=True, help_text="null: no limit.")
    requestsPerMinute = serializers.IntegerField()
    subscriberDiscountPercent = serializers.CharField()
