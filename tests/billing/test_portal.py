"""Portal pages: buy, plan, history with receipts, customer disputes; the admin's dispute resolution."""

import pytest
from django.urls import reverse

from billing.models import Dispute, Purchase, Quote
from billing.services import open_dispute, resolve_dispute, start_purchase
from credits.selectors import get_balance
from tests.billing.conftest import quote_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def bought(sandbox, organization, owner) -> Purchase:
    quote = quote_for(organization, credits=500)
    return start_purchase(organization=organization, quote_id=quote.pk, provider="sandbox", actor=owner).purchase


def test_the_buy_page_shows_packs_tiers_and_the_sandbox(sandbox, client, owner):
    client.force_login(owner)
    response = client.get(reverse("billing:buy"))

    assert response.status_code == 200
    page = response.content.decode()
    for text in ("Small pack", "Large pack", "Custom amount", "Promotion code", "Sandbox (demo)", "5% off from 1,000"):
        assert text in page
    assert "/api/credits/purchase/validate" in page
    assert "<script src=" not in page  # no CDN: the live price is a few lines of our own


def test_buying_without_javascript_quotes_then_pays_through_the_sandbox(sandbox, client, owner, organization):
    client.force_login(owner)
    priced = client.post(reverse("billing:buy"), {"credits": "1000", "promo_code": ""})
    quote = Quote.objects.get(organization=organization)
    assert "$95.00" in priced.content.decode()

    paid = client.post(reverse("billing:pay"), {"quote_id": str(quote.pk), "provider": "sandbox"})

    purchase = Purchase.objects.get(quote=quote)
    assert paid.status_code == 302 and paid["Location"] == reverse("billing:receipt", args=[purchase.pk])
    assert get_balance(organization_id=organization.pk) == 1000


@pytest.mark.parametrize(
    ("credits", "message"),
    [
        ("-5", "Buy from 10 to 1,000,000 credits."),
        ("0", "Buy from 10 to 1,000,000 credits."),
        ("5", "Buy from 10 to 1,000,000 credits."),
        ("1.5", "Enter a whole number of credits. Buy from 10 to 1,000,000 credits."),
        ("abc", "Enter a whole number of credits. Buy from 10 to 1,000,000 credits."),
        ("", "Choose a pack or enter a number of credits."),
    ],
)
def test_a_bad_amount_on_the_buy_page_says_what_to_enter(sandbox, client, owner, credits, message):
    client.force_login(owner)

    response = client.post(reverse("billing:buy"), {"credits": credits, "promo_code": ""})

    page = response.content.decode()
    assert message in page
    assert "Choose a pack or enter a number of credits." not in page or not credits
    assert not Quote.objects.exists()


def test_history_and_receipt_show_the_purchase(bought, client, owner):
    client.force_login(owner)
    history = client.get(reverse("billing:history")).content.decode()
    receipt = client.get(reverse("billing:receipt", args=[bought.pk])).content.decode()

    assert reverse("billing:receipt", args=[bought.pk]) in history
    assert "$50.00" in receipt and "Dispute this charge" in receipt


def test_another_organizations_receipt_is_not_found(bought, client, outsider):
    client.force_login(outsider)
    assert client.get(reverse("billing:receipt", args=[bought.pk])).status_code == 404
    assert client.post(reverse("billing:dispute", args=[bought.pk]), {"reason": "not mine at all"}).status_code == 404
    assert not Dispute.objects.exists()


def test_a_customer_disputes_a_charge_once(bought, client, owner):
    client.force_login(owner)
    url = reverse("billing:dispute", args=[bought.pk])

    client.post(url, {"reason": "I was charged twice for this."})
    client.post(url, {"reason": "Again: I was charged twice."})

    dispute = Dispute.objects.get()
    assert (dispute.source, dispute.status, dispute.opened_by, dispute.purchase) == ("customer", "open", owner, bought)


def test_staff_resolve_a_dispute_returning_credits_through_the_ledger_once(bought, owner, staff, organization):
    dispute = open_dispute(purchase=bought, reason="Credits never arrived in full.", actor=owner)

    resolve_dispute(dispute=dispute, resolution="Goodwill credits.", refund_credits=40, actor=staff)

    dispute.refresh_from_db()
    assert (dispute.status, dispute.credits_refunded, dispute.resolved_by) == ("resolved", 40, staff)
    assert get_balance(organization_id=organization.pk) == 540
    from billing.errors import DisputeNotOpen

    with pytest.raises(DisputeNotOpen):
        resolve_dispute(dispute=dispute, resolution="twice", refund_credits=40, actor=staff)
    assert get_balance(organization_id=organization.pk) == 540


def test_the_admin_resolve_action(bought, owner, superuser, client, organization):
    dispute = open_dispute(purchase=bought, reason="Please check this charge.", actor=owner)
    client.force_login(superuser)
    url = reverse("admin:billing_dispute_changelist")

    form = client.post(url, {"action": "resolve_disputes", "_selected_action": [dispute.pk]})
    done = client.post(
        url,
        {
            "action": "resolve_disputes",
            "_selected_action": [dispute.pk],
            "apply": "1",
            "resolution": "Checked, credits returned.",
            "refund_credits": "10",
        },
    )

    assert form.status_code == 200 and b"Resolve disputes" in form.content
    assert done.status_code == 302
    dispute.refresh_from_db()
    assert (dispute.status, dispute.credits_refunded) == ("resolved", 10)
    assert get_balance(organization_id=organization.pk) == 510


@pytest.mark.parametrize(
    "name",
    [
        "admin:billing_plan_changelist",
        "admin:billing_creditpackage_changelist",
        "admin:billing_bulkdiscounttier_changelist",
        "admin:billing_promotion_changelist",
        "admin:billing_promotionredemption_changelist",
        "admin:billing_quote_changelist",
        "admin:billing_purchase_changelist",
        "admin:billing_subscription_changelist",
        "admin:billing_dispute_changelist",
    ],
)
def test_the_admin_pages_open(bought, superuser, client, name):
    client.force_login(superuser)
    assert client.get(reverse(name)).status_code == 200


def test_the_plan_page_changes_the_plan_through_the_sandbox(sandbox, client, owner, organization):
    client.force_login(owner)
    page = client.get(reverse("billing:plan")).content.decode()
    assert "Professional" in page and "Requests a minute" in page

    client.post(reverse("billing:plan_change"), {"plan": "starter", "provider": "sandbox"})
    organization.refresh_from_db()
    assert organization.plan_id == "starter"

    client.post(reverse("billing:plan_cancel"))
    organization.refresh_from_db()
    assert organization.plan_id == "free"


def test_the_plan_page_refuses_the_current_plan_and_says_so(sandbox, client, owner, organization):
    client.force_login(owner)
    client.post(reverse("billing:plan_change"), {"plan": "starter", "provider": "sandbox"})

    again = client.post(reverse("billing:plan_change"), {"plan": "starter", "provider": "sandbox"}, follow=True)

    assert "Your organization is already on the Starter plan." in again.content.decode()
    assert get_balance(organization_id=organization.pk) == 200
    assert Purchase.objects.filter(organization=organization, kind="subscription").count() == 1


def test_a_member_sees_prices_but_cannot_pay(sandbox, client, member, organization):
    client.force_login(member)
    quote = quote_for(organization, credits=100)

    response = client.post(reverse("billing:pay"), {"quote_id": str(quote.pk), "provider": "sandbox"})

    assert response.status_code == 302
    assert get_balance(organization_id=organization.pk) == 0


def test_without_a_payment_method_the_plan_page_offers_no_paid_plan_and_says_why(
    no_payment_method, client, owner, organization
):
    """Found from outside: the Upgrade buttons showed, and pressing one blamed the sandbox, a
    provider the customer never chose."""
    client.force_login(owner)
    page = client.get(reverse("billing:plan")).content.decode()
    assert ">Upgrade</button>" not in page and "No payment method configured" in page

    refused = client.post(reverse("billing:plan_change"), {"plan": "starter"}, follow=True).content.decode()

    assert "No payment method is configured on this server" in refused
    assert "sandbox" not in refused.lower()
    organization.refresh_from_db()
    assert organization.plan_id == "free"
    assert not Purchase.objects.filter(organization=organization).exists()
