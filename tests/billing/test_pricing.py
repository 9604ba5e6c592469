from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.errors import (
    InvalidCreditAmount,
    PromotionAlreadyRedeemed,
    PromotionExhausted,
    PromotionInvalid,
    PromotionNotActive,
    UnknownPackage,
)
from billing.models import CreditPackage, Promotion, PromotionRedemption, Quote
from billing.pricing import PromotionRule, TierRule, compute_breakdown, tier_order_problem
from billing.services import change_plan, create_quote

TIERS = [TierRule(1000, Decimal(5)), TierRule(5000, Decimal(10)), TierRule(20000, Decimal(15))]
RATE = Decimal("0.10")


def lines(breakdown):
    return [(line["kind"], line["amount"]) for line in breakdown.discounts]


def test_a_small_custom_amount_costs_the_base_rate_with_no_discount():
    breakdown = compute_breakdown(credits=999, base_rate=RATE, tiers=TIERS)
    assert (breakdown.subtotal, lines(breakdown), breakdown.total) == (Decimal("99.90"), [], Decimal("99.90"))


@pytest.mark.parametrize(
    ("credits", "discount", "total"),
    [(1000, "5.00", "95.00"), (4999, "25.00", "474.90"), (5000, "50.00", "450.00"), (20000, "300.00", "1700.00")],
)
def test_custom_amounts_get_the_highest_bulk_tier_they_reach(credits, discount, total):
    breakdown = compute_breakdown(credits=credits, base_rate=RATE, tiers=TIERS)
    assert lines(breakdown) == [("bulk", discount)]
    assert breakdown.total == Decimal(total)


def test_bulk_and_subscriber_discounts_do_not_stack_the_best_one_applies():
    bulk_wins = compute_breakdown(
        credits=5000, base_rate=RATE, tiers=TIERS, plan_name="Starter", subscriber_percent=Decimal(5)
    )
    subscriber_wins = compute_breakdown(
        credits=1000, base_rate=RATE, tiers=TIERS, plan_name="Enterprise", subscriber_percent=Decimal(15)
    )
    assert lines(bulk_wins) == [("bulk", "50.00")]
    assert lines(subscriber_wins) == [("subscriber", "15.00")]
    assert subscriber_wins.discounts[0]["label"] == "Enterprise subscriber discount 15%"


def test_packs_get_the_subscriber_discount_but_never_bulk_tiers():
    plain = compute_breakdown(credits=2000, base_rate=RATE, package_price=Decimal("160.00"), tiers=TIERS)
    subscriber = compute_breakdown(
        credits=2000,
        base_rate=RATE,
        package_price=Decimal("160.00"),
        tiers=TIERS,
        plan_name="Professional",
        subscriber_percent=Decimal(10),
    )
    assert (plain.subtotal, lines(plain), plain.total) == (Decimal("160.00"), [], Decimal("160.00"))
    assert (lines(subscriber), subscriber.total) == ([("subscriber", "16.00")], Decimal("144.00"))


def test_a_percentage_promotion_applies_on_top_of_the_best_discount():
    breakdown = compute_breakdown(
        credits=5000, base_rate=RATE, tiers=TIERS, promotion=PromotionRule("SPRING", percent_off=Decimal(20))
    )
    assert lines(breakdown) == [("bulk", "50.00"), ("promotion", "90.00")]
    assert breakdown.total == Decimal("360.00")
    assert breakdown.as_dict()["total"] == "360.00"


def test_a_bonus_promotion_adds_credits_and_leaves_the_price():
    breakdown = compute_breakdown(credits=100, base_rate=RATE, promotion=PromotionRule("BONUS", bonus_credits=50))
    assert (breakdown.bonus_credits, lines(breakdown), breakdown.total) == (50, [], Decimal("10.00"))


def test_discount_lines_are_rounded_half_up_to_the_cent():
    breakdown = compute_breakdown(credits=1001, base_rate=RATE, tiers=TIERS)  # 5% of 100.10 = 5.005
    assert lines(breakdown) == [("bulk", "5.01")]
    assert breakdown.total == Decimal("95.09")


# --- Quotes built from the admin-editable data --------------------------------------------------


def test_the_installed_tiers_and_packs_price_a_quote(organization):
    pack = CreditPackage.objects.get(name="Large pack")
    custom = create_quote(organization=organization, credits=20000)
    packed = create_quote(organization=organization, package_id=pack.pk)

    assert (custom.subtotal, custom.total, custom.discounts[0]["kind"]) == (
        Decimal("2000.00"),
        Decimal("1700.00"),
        "bulk",
    )
    assert (packed.credits, packed.total, packed.discounts) == (2000, Decimal("160.00"), [])
    assert custom.expires_at - custom.created_at == timedelta(minutes=30)
    assert custom.currency == "usd"


def test_a_subscriber_quote_uses_the_plans_discount(organization):
    change_plan(organization=organization, plan_code="enterprise")
    quote = create_quote(organization=organization, credits=1000)
    assert quote.discounts == [{"kind": "subscriber", "label": "Enterprise subscriber discount 15%", "amount": "15.00"}]
    assert quote.total == Decimal("85.00")


def test_staff_edits_to_the_tiers_change_new_quotes(organization):
    from billing.models import BulkDiscountTier

    BulkDiscountTier.objects.filter(min_credits=1000).update(percent=Decimal("7.5"))
    assert create_quote(organization=organization, credits=1000).total == Decimal("92.50")


@pytest.mark.parametrize("credits", [0, 9, 1_000_001, -5])
def test_amounts_outside_the_limits_are_refused(organization, credits):
    with pytest.raises(InvalidCreditAmount):
        create_quote(organization=organization, credits=credits)
    assert not Quote.objects.exists()


def test_an_inactive_or_unknown_pack_is_refused(organization):
    pack = CreditPackage.objects.first()
    pack.active = False
    pack.save()
    with pytest.raises(UnknownPackage):
        create_quote(organization=organization, package_id=pack.pk)
    with pytest.raises(UnknownPackage):
        create_quote(organization=organization, package_id=999999)


def make_promotion(**kwargs) -> Promotion:
    defaults = {"code": "SPRING", "percent_off": Decimal(20)}
    return Promotion.objects.create(**{**defaults, **kwargs})


def test_promotion_codes_match_without_regard_to_case(organization):
    make_promotion()
    quote = create_quote(organization=organization, credits=100, promo_code="  spring ")
    assert quote.total == Decimal("8.00")


def test_an_unknown_promotion_code_is_refused(organization):
    with pytest.raises(PromotionInvalid):
        create_quote(organization=organization, credits=100, promo_code="NOPE")


def test_a_promotion_outside_its_window_is_refused(organization):
    now = timezone.now()
    make_promotion(code="LATER", starts_at=now + timedelta(days=1))
    make_promotion(code="OVER", starts_at=now - timedelta(days=10), ends_at=now - timedelta(days=1))
    make_promotion(code="OFF", active=False)
    for code in ("LATER", "OVER", "OFF"):
        with pytest.raises(PromotionNotActive):
            create_quote(organization=organization, credits=100, promo_code=code)


def test_a_promotion_at_its_limit_is_refused(organization, outsider):
    promotion = make_promotion(max_redemptions=1)
    PromotionRedemption.objects.create(promotion=promotion, organization=outsider.membership.organization)
    with pytest.raises(PromotionExhausted):
        create_quote(organization=organization, credits=100, promo_code="SPRING")


def test_a_promotion_is_once_per_organization(organization):
    promotion = make_promotion()
    PromotionRedemption.objects.create(promotion=promotion, organization=organization)
    with pytest.raises(PromotionAlreadyRedeemed):
        create_quote(organization=organization, credits=100, promo_code="SPRING")


def test_the_database_refuses_a_second_redemption_by_one_organization(organization):
    from django.db import IntegrityError, transaction

    promotion = make_promotion()
    PromotionRedemption.objects.create(promotion=promotion, organization=organization)
    with pytest.raises(IntegrityError), transaction.atomic():
        PromotionRedemption.objects.create(promotion=promotion, organization=organization)


def test_housekeeping_expires_unpaid_purchases_and_frees_their_promotion(sandbox, organization, owner):
    from billing.models import Purchase
    from billing.services import _reserve_purchase, expire_stale_billing

    make_promotion(code="LATE", percent_off=None, bonus_credits=10)
    quote = create_quote(organization=organization, credits=100, promo_code="LATE")
    purchase = _reserve_purchase(organization=organization, quote_id=quote.pk, provider="stripe", actor=owner)
    old_quote = create_quote(organization=organization, credits=100)
    Quote.objects.filter(pk=old_quote.pk).update(expires_at=timezone.now() - timedelta(days=2))
    Purchase.objects.filter(pk=purchase.pk).update(created_at=timezone.now() - timedelta(days=2))

    assert expire_stale_billing() == {"purchases": 1, "quotes": 1}

    purchase.refresh_from_db()
    assert purchase.status == "expired"
    assert not PromotionRedemption.objects.exists()
    assert Quote.objects.filter(pk=quote.pk).exists()


# --- Tiers in order ---------------------------------------------------------------------------


def test_tiers_giving_more_off_for_more_credits_are_consistent():
    tiers = [TierRule(5000, Decimal("10")), TierRule(1000, Decimal("5")), TierRule(20000, Decimal("10"))]

    assert tier_order_problem(tiers) is None
    assert tier_order_problem([]) is None


def test_a_tier_giving_less_off_for_more_credits_is_named():
    problem = tier_order_problem([TierRule(1000, Decimal("5")), TierRule(0, Decimal("50"))])

    assert problem == (
        "A tier for more credits must give at least the discount of a tier for fewer: 50% from 0 credits is "
        "more than 5% from 1,000 credits (999 credits would get 50% off, 1,000 only 5%)."
    )
