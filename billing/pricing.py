"""The price of credits: one pure function, so the quote, the page and the tests agree.

Rules (documented for customers on the buy page and in the API schema):
- Subtotal: a pack's price, or a custom amount times CREDIT_BASE_RATE.
- Then ONE percentage discount, the best that applies: the bulk tier reached by a custom
  amount (packs are already discounted, so tiers never apply to them) or the plan's
  subscriber discount (packs and custom amounts). They never stack.
- Then a promotion, on top: a percentage off what remains, or bonus credits.
- Every discount line is rounded to the cent (half up); the total is the subtotal less the lines.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise
from typing import Any

CENT = Decimal("0.01")
HUNDRED = Decimal(100)


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def cents(amount: Decimal) -> int:
    """A money amount in whole cents, as Stripe counts it."""
    return int((amount * 100).to_integral_value())


def money_str(value: Decimal) -> str:
    return str(money(value))


def percent_label(percent: Decimal) -> str:
    text = format(percent.normalize(), "f")
    return f"{text}%"


@dataclass(frozen=True)
class TierRule:
    min_credits: int
    percent: Decimal


@dataclass(frozen=True)
class PromotionRule:
    code: str
    percent_off: Decimal | None = None
    bonus_credits: int | None = None


@dataclass
class Breakdown:
    credits: int
    bonus_credits: int
    subtotal: Decimal
    discounts: list[dict[str, str]] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return self.subtotal - sum((Decimal(line["amount"]) for line in self.discounts), Decimal("0.00"))

    def as_dict(self) -> dict[str, Any]:
        return {
            "credits": self.credits,
            "bonusCredits": self.bonus_credits,
            "subtotal": money_str(self.subtotal),
            "discounts": self.discounts,
            "total": money_str(self.total),
        }


def tier_order_problem(tiers: Sequence[TierRule]) -> str | None:
    """Why a set of tiers is inconsistent (a tier for more credits gives less off), else None.

    `best_tier` takes the highest tier reached, so a tier for fewer credits with a bigger
    percentage would make buying more cost more (50% from 0 and 5% from 1,000: 999 credits
    get 50% off, 1,000 get 5%).
    """
    ordered = sorted(tiers, key=lambda tier: tier.min_credits)
    for fewer, more in pairwise(ordered):
        if more.percent < fewer.percent:
            low, high = percent_label(fewer.percent), percent_label(more.percent)
            return (
                "A tier for more credits must give at least the discount of a tier for fewer: "
                f"{low} from {fewer.min_credits:,} credits is more than {high} from {more.min_credits:,} credits "
                f"({more.min_credits - 1:,} credits would get {low} off, {more.min_credits:,} only {high})."
            )
    return None


def best_tier(credits: int, tiers: list[TierRule]) -> TierRule | None:
    reached = [tier for tier in tiers if credits >= tier.min_credits]
    return max(reached, key=lambda tier: tier.min_credits) if reached else None


def compute_breakdown(
    *,
    credits: int,
    base_rate: Decimal,
    package_price: Decimal | None = None,
    tiers: Sequence[TierRule] = (),
    plan_name: str = "",
    subscriber_percent: Decimal = Decimal(0),
    promotion: PromotionRule | None = None,
) -> Breakdown:
    """The price of `credits` (a pack when `package_price` is given), with its discount lines."""
    subtotal = money(package_price if package_price is not None else Decimal(credits) * base_rate)
    breakdown = Breakdown(credits=credits, bonus_credits=0, subtotal=subtotal)

    candidates: list[tuple[Decimal, str, str]] = []
    tier = best_tier(credits, list(tiers)) if package_price is None else None
    if tier is not None:
        candidates.append(
            (tier.percent, "bulk", f"Bulk discount {percent_label(tier.percent)} (from {tier.min_credits:,} credits)")
        )
    if subscriber_percent > 0:
        candidates.append(
            (subscriber_percent, "subscriber", f"{plan_name} subscriber discount {percent_label(subscriber_percent)}")
        )
    remaining = subtotal
    if candidates:
        percent, kind, label = max(candidates, key=lambda candidate: candidate[0])
        amount = money(subtotal * percent / HUNDRED)
        breakdown.discounts.append({"kind": kind, "label": label, "amount": money_str(amount)})
        remaining -= amount

    if promotion is not None:
        if promotion.percent_off:
            amount = money(remaining * promotion.percent_off / HUNDRED)
            label = f"Promotion {promotion.code} {percent_label(promotion.percent_off)}"
            breakdown.discounts.append({"kind": "promotion", "label": label, "amount": money_str(amount)})
        elif promotion.bonus_credits:
            breakdown.bonus_credits = promotion.bonus_credits
    return breakdown
