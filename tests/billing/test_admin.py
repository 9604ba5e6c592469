"""Staff editing pricing data in the admin: every refused edit says why and changes nothing."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from billing.models import Plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    from accounts.models import User

    # No password: hashing one costs seconds a test, and force_login needs none.
    client.force_login(User.objects.create_superuser(email="root@creditdesk.test", password=None))
    return client


def form_data(obj, fields: list[str], **changes) -> dict:
    """What the admin's change form posts back for `obj`, with `changes` applied."""
    data = {}
    for name in fields:
        value = getattr(obj, name)
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        else:
            data[name] = "" if value is None else str(value)
    for name, value in changes.items():
        if value is False:
            data.pop(name, None)
        else:
            data[name] = value
    return data


PLAN_FIELDS = [
    "name",
    "monthly_price",
    "monthly_credits",
    "allows_all_query_types",
    "max_api_keys",
    "requests_per_minute",
    "subscriber_discount_percent",
    "stripe_price_id",
    "is_active",
    "sort_order",
]


def post_plan(staff_client, plan: Plan, **changes):
    import json

    data = form_data(plan, PLAN_FIELDS, **changes)
    data.setdefault("allowed_query_types", json.dumps(plan.allowed_query_types))
    return staff_client.post(reverse("admin:billing_plan_change", args=[plan.pk]), data)


def errors_of(response) -> str:
    """The page's text when the admin refused the form (a 200 that shows the form again)."""
    assert response.status_code == 200, response.status_code
    page = response.content.decode()
    assert "Please correct the error" in page
    return page


# --- The default plan ---------------------------------------------------------------------------


def test_the_free_plan_cannot_be_deactivated_in_its_form(staff_client):
    free = Plan.objects.get(code="free")

    page = errors_of(post_plan(staff_client, free, is_active=False))

    assert "The Free plan is the default every organization starts on" in page
    assert Plan.objects.get(code="free").is_active


def test_the_free_plan_cannot_be_deactivated_from_the_list(staff_client):
    plans = list(Plan.objects.order_by("sort_order"))
    data = {
        "form-TOTAL_FORMS": str(len(plans)),
        "form-INITIAL_FORMS": str(len(plans)),
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    for index, plan in enumerate(plans):
        data[f"form-{index}-id"] = str(plan.pk)
        if plan.code != "free":
            data[f"form-{index}-is_active"] = "on"

    response = staff_client.post(reverse("admin:billing_plan_changelist"), data)

    assert response.status_code == 200
    assert "it cannot be deactivated" in response.content.decode()
    assert Plan.objects.get(code="free").is_active


def test_another_plan_can_still_be_deactivated(staff_client):
    starter = Plan.objects.get(code="starter")

    response = post_plan(staff_client, starter, is_active=False)

    assert response.status_code == 302
    assert not Plan.objects.get(code="starter").is_active


def test_the_model_and_the_database_keep_the_free_plan_active():
    free = Plan.objects.get(code="free")
    free.is_active = False

    with pytest.raises(ValidationError) as refused:
        free.full_clean()
    assert "cannot be deactivated" in str(refused.value.message_dict["is_active"])
    with pytest.raises(IntegrityError), transaction.atomic():
        Plan.objects.filter(code="free").update(is_active=False)


def test_no_plan_can_be_deleted_in_the_admin(staff_client):
    free = Plan.objects.get(code="free")

    response = staff_client.post(reverse("admin:billing_plan_delete", args=[free.pk]), {"post": "yes"})

    assert response.status_code == 403
    assert Plan.objects.filter(code="free").exists()


# --- Allowed query types --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("posted", "message"),
    [
        ('"standard"', "Enter a JSON list of query type names"),
        ('{"standard": true}', "Enter a JSON list of query type names"),
        ("[1, 2]", "Not a query type name: 1, 2."),
        ('["Standard"]', "Not a query type name: &quot;Standard&quot;."),
        ('["standard", ""]', "Not a query type name: &quot;&quot;."),
        ('["' + "x" * 65 + '"]', "Each is a string of 1 to 64 characters"),
        ('["standard", "standard"]', "List each query type once."),
        ("[]", "must list at least one"),
    ],
)
def test_a_bad_list_of_query_types_is_refused_with_a_clear_message(staff_client, posted, message):
    starter = Plan.objects.get(code="starter")

    page = errors_of(post_plan(staff_client, starter, allowed_query_types=posted))

    assert message in page
    assert Plan.objects.get(code="starter").allowed_query_types == ["standard"]


def test_a_plan_allowing_all_query_types_keeps_its_list_empty(staff_client):
    professional = Plan.objects.get(code="professional")

    page = errors_of(post_plan(staff_client, professional, allowed_query_types='["standard"]'))

    assert "This plan allows all query types: leave the list empty" in page
    assert Plan.objects.get(code="professional").allowed_query_types == []


def test_a_good_list_of_query_types_is_saved_and_shown_to_customers(staff_client, client, owner):
    starter = Plan.objects.get(code="starter")

    response = post_plan(staff_client, starter, allowed_query_types='["standard", "geo.lookup", "bulk_v2"]')

    assert response.status_code == 302
    assert Plan.objects.get(code="starter").allowed_query_types == ["standard", "geo.lookup", "bulk_v2"]
    client.force_login(owner)
    plans = {plan["code"]: plan for plan in client.get("/api/subscription").json()["plans"]}
    assert plans["starter"]["allowedQueryTypes"] == ["standard", "geo.lookup", "bulk_v2"]


def test_the_model_refuses_a_string_of_query_types():
    starter = Plan.objects.get(code="starter")
    starter.allowed_query_types = "standard"

    with pytest.raises(ValidationError) as refused:
        starter.full_clean()

    assert list(refused.value.message_dict) == ["allowed_query_types"]


# --- Constraint messages --------------------------------------------------------------------------

INLINE_REDEMPTIONS = {
    "redemptions-TOTAL_FORMS": "0",
    "redemptions-INITIAL_FORMS": "0",
    "redemptions-MIN_NUM_FORMS": "0",
    "redemptions-MAX_NUM_FORMS": "1000",
}


def promotion_form(**changes) -> dict:
    data = {
        "code": "SPRING",
        "description": "",
        "percent_off": "",
        "bonus_credits": "",
        "starts_at_0": "2026-03-01",
        "starts_at_1": "00:00:00",
        "ends_at_0": "",
        "ends_at_1": "",
        "max_redemptions": "",
        "active": "on",
        "created_at_0": "2026-03-01",
        "created_at_1": "00:00:00",
        **INLINE_REDEMPTIONS,
    }
    data.update(changes)
    return data


def assert_refused_in_plain_words(response, message: str) -> None:
    page = errors_of(response)
    assert message in page
    assert "Constraint “" not in page and "is violated" not in page


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"percent_off": "10", "bonus_credits": "50"}, "Give a promotion exactly one benefit"),
        ({}, "Give a promotion exactly one benefit"),
        ({"percent_off": "100"}, "Give a promotion exactly one benefit"),
        (
            {"percent_off": "10", "ends_at_0": "2026-02-01", "ends_at_1": "00:00:00"},
            "A promotion must end after it starts",
        ),
    ],
)
def test_a_bad_promotion_is_refused_in_plain_words(staff_client, changes, message):
    from billing.models import Promotion

    response = staff_client.post(reverse("admin:billing_promotion_add"), promotion_form(**changes))

    assert_refused_in_plain_words(response, message)
    assert not Promotion.objects.filter(code="SPRING").exists()


def test_a_promotion_code_taken_in_another_case_is_refused_in_plain_words(staff_client):
    from billing.models import Promotion

    Promotion.objects.create(code="spring", percent_off=5)

    response = staff_client.post(reverse("admin:billing_promotion_add"), promotion_form(percent_off="10"))

    assert_refused_in_plain_words(response, "A promotion with this code already exists")
    assert Promotion.objects.count() == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"credits": "0"}, "A credit pack holds at least 1 credit."),
        ({"price": "0"}, "A credit pack&#x27;s price must be more than 0.00."),
    ],
)
def test_a_bad_credit_pack_is_refused_in_plain_words(staff_client, changes, message):
    from billing.models import CreditPackage

    before = CreditPackage.objects.count()
    data = {"name": "Tiny pack", "credits": "10", "price": "1.00", "active": "on", "sort_order": "9", **changes}

    response = staff_client.post(reverse("admin:billing_creditpackage_add"), data)

    assert_refused_in_plain_words(response, message)
    assert CreditPackage.objects.count() == before


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"monthly_price": "-1.00"}, "The monthly price cannot be negative"),
        ({"subscriber_discount_percent": "150"}, "The subscriber discount is a percentage from 0 to 100."),
    ],
)
def test_a_bad_plan_is_refused_in_plain_words(staff_client, changes, message):
    starter = Plan.objects.get(code="starter")

    assert_refused_in_plain_words(post_plan(staff_client, starter, **changes), message)
    starter_after = Plan.objects.get(code="starter")
    assert (starter_after.monthly_price, starter_after.subscriber_discount_percent) == (
        starter.monthly_price,
        starter.subscriber_discount_percent,
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"min_credits": "100000", "percent": "0"}, "A bulk discount is a percentage above 0 and below 100."),
        ({"min_credits": "100000", "percent": "100"}, "A bulk discount is a percentage above 0 and below 100."),
        ({"min_credits": "1000", "percent": "5"}, "There is already a bulk discount tier from this number of credits."),
    ],
)
def test_a_bad_bulk_tier_is_refused_in_plain_words(staff_client, data, message):
    from billing.models import BulkDiscountTier

    before = list(BulkDiscountTier.objects.values_list("min_credits", "percent"))

    response = staff_client.post(reverse("admin:billing_bulkdiscounttier_add"), data)

    assert_refused_in_plain_words(response, message)
    assert list(BulkDiscountTier.objects.values_list("min_credits", "percent")) == before


# --- Bulk tiers in order (as installed: 5% from 1,000, 10% from 5,000, 15% from 20,000) -------------


def tiers() -> list[tuple[int, str]]:
    from billing.models import BulkDiscountTier

    return [(tier.min_credits, str(tier.percent)) for tier in BulkDiscountTier.objects.order_by("min_credits")]


INSTALLED_TIERS = [(1000, "5.00"), (5000, "10.00"), (20000, "15.00")]


def test_a_tier_giving_more_off_for_fewer_credits_is_refused(staff_client):
    response = staff_client.post(reverse("admin:billing_bulkdiscounttier_add"), {"min_credits": "0", "percent": "50"})

    page = errors_of(response)
    assert "50% from 0 credits is more than 5% from 1,000 credits" in page
    assert tiers() == INSTALLED_TIERS


def test_raising_a_tier_above_the_next_one_is_refused(staff_client):
    from billing.models import BulkDiscountTier

    middle = BulkDiscountTier.objects.get(min_credits=5000)

    response = staff_client.post(
        reverse("admin:billing_bulkdiscounttier_change", args=[middle.pk]), {"min_credits": "5000", "percent": "20"}
    )

    assert "20% from 5,000 credits is more than 15% from 20,000 credits" in errors_of(response)
    assert tiers() == INSTALLED_TIERS


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"min_credits": "10000", "percent": "10"}, [*INSTALLED_TIERS[:2], (10000, "10.00"), INSTALLED_TIERS[2]]),
        ({"min_credits": "50000", "percent": "20"}, [*INSTALLED_TIERS, (50000, "20.00")]),
    ],
)
def test_a_tier_in_order_is_added(staff_client, data, expected):
    response = staff_client.post(reverse("admin:billing_bulkdiscounttier_add"), data)

    assert response.status_code == 302
    assert tiers() == expected
