"""Resolving disputes: never more back than the disputed purchase, less its refunds and earlier disputes."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from billing.errors import DisputeReasonTooLong, DisputeRefundTooLarge, InvalidCreditAmount
from billing.models import CreditPackage, Dispute, Purchase
from billing.selectors import get_dispute_refundable_credits
from billing.services import (
    complete_purchase,
    open_dispute,
    record_stripe_dispute_closed,
    record_stripe_refund,
    resolve_dispute,
    start_purchase,
)
from core.models import AuditEvent
from credits.models import Transaction
from credits.selectors import get_balance, verify_ledger
from credits.services import spend_credits
from tests.billing.conftest import quote_for, stripe_event

pytestmark = pytest.mark.django_db


def balance(organization) -> int:
    return get_balance(organization_id=organization.pk)


@pytest.fixture
def medium_pack(sandbox, organization, owner) -> Purchase:
    """The outside check's case: 500 credits bought for $42.50."""
    pack = CreditPackage.objects.get(name="Medium pack")
    quote = quote_for(organization, package_id=pack.pk)
    purchase = start_purchase(organization=organization, quote_id=quote.pk, provider="sandbox", actor=owner).purchase
    assert (purchase.credits, str(purchase.amount), balance(organization)) == (500, "42.50", 500)
    return purchase


@pytest.fixture
def dispute(medium_pack, owner) -> Dispute:
    return open_dispute(purchase=medium_pack, reason="These credits never showed up.", actor=owner)


def assert_nothing_changed(dispute: Dispute, organization, *, balance_before: int, transactions_before: int) -> None:
    dispute.refresh_from_db()
    assert (dispute.status, dispute.credits_refunded, dispute.resolved_at) == ("open", 0, None)
    assert balance(organization) == balance_before
    assert Transaction.objects.count() == transactions_before
    assert not Transaction.objects.filter(idempotency_key=f"dispute:{dispute.pk}:refund").exists()
    assert not AuditEvent.objects.filter(event="dispute_resolved", target=f"dispute:{dispute.pk}").exists()


# --- Through the service ---------------------------------------------------------------------


def test_a_dispute_reason_too_long_is_refused_whole_and_opens_nothing(medium_pack, owner):
    with pytest.raises(DisputeReasonTooLong, match="2,001 characters long: at most 2000"):
        open_dispute(purchase=medium_pack, reason="d" * 2001, actor=owner)
    assert not Dispute.objects.exists()
    dispute = open_dispute(purchase=medium_pack, reason=f" {'d' * 2000} ", actor=owner)
    assert dispute.reason == "d" * 2000


def test_a_dispute_can_give_back_every_credit_of_the_purchase(dispute, staff, organization):
    resolve_dispute(dispute=dispute, resolution="Refunded in credits.", refund_credits=500, actor=staff)

    dispute.refresh_from_db()
    assert (dispute.status, dispute.credits_refunded) == ("resolved", 500)
    assert balance(organization) == 1000


def test_one_credit_more_than_the_purchase_is_refused_and_changes_nothing(dispute, staff, organization):
    transactions_before = Transaction.objects.count()

    with pytest.raises(DisputeRefundTooLarge) as refused:
        resolve_dispute(dispute=dispute, resolution="Too generous.", refund_credits=501, actor=staff)

    assert refused.value.code == "dispute_refund_too_large"
    assert refused.value.extra == {"refundable": 500}
    assert "At most 500 credits" in refused.value.message
    assert_nothing_changed(dispute, organization, balance_before=500, transactions_before=transactions_before)


def test_the_outside_checks_amount_is_refused(dispute, staff, organization):
    with pytest.raises(DisputeRefundTooLarge):
        resolve_dispute(dispute=dispute, resolution="Typo.", refund_credits=999_999_999, actor=staff)

    assert balance(organization) == 500


@pytest.mark.parametrize("amount", [-1, True, 1.5, "10", None])
def test_an_amount_that_is_not_a_whole_number_of_credits_is_refused(dispute, staff, organization, amount):
    transactions_before = Transaction.objects.count()

    with pytest.raises(InvalidCreditAmount):
        resolve_dispute(dispute=dispute, resolution="Odd.", refund_credits=amount, actor=staff)

    assert_nothing_changed(dispute, organization, balance_before=500, transactions_before=transactions_before)


def test_a_second_dispute_on_the_same_purchase_counts_what_the_first_gave_back(
    medium_pack, dispute, owner, staff, organization
):
    resolve_dispute(dispute=dispute, resolution="Part of it.", refund_credits=300, actor=staff)
    second = open_dispute(purchase=medium_pack, reason="The rest never showed up either.", actor=owner)
    transactions_before = Transaction.objects.count()

    with pytest.raises(DisputeRefundTooLarge) as refused:
        resolve_dispute(dispute=second, resolution="All of it again.", refund_credits=201, actor=staff)

    assert refused.value.extra == {"refundable": 200}
    assert_nothing_changed(second, organization, balance_before=800, transactions_before=transactions_before)

    resolve_dispute(dispute=second, resolution="The rest.", refund_credits=200, actor=staff)
    assert balance(organization) == 1000
    third = open_dispute(purchase=medium_pack, reason="Once more, with feeling.", actor=owner)
    with pytest.raises(DisputeRefundTooLarge):
        resolve_dispute(dispute=third, resolution="Nothing left.", refund_credits=1, actor=staff)
    resolve_dispute(dispute=third, resolution="Closed without credits.", refund_credits=0, actor=staff)
    third.refresh_from_db()
    assert (third.status, third.credits_refunded, balance(organization)) == ("resolved", 0, 1000)


def test_a_provider_refund_counts_against_what_a_dispute_can_give_back(fake_stripe, organization, owner, staff):
    quote = quote_for(organization, credits=1000)  # $95.00
    started = start_purchase(organization=organization, quote_id=quote.pk, provider="stripe", actor=owner)
    purchase = complete_purchase(
        purchase_id=started.purchase.pk,
        payment_id="pi_dispute_test",
        amount_paid=started.purchase.amount,
        currency="usd",
        idempotency_key="stripe:checkout:dispute-test",
    )
    spend_credits(organization=organization, amount=800, reason="usage", idempotency_key="t:spend")
    # Half the money back: 500 credits to take back, 200 left in the wallet, 300 short.
    record_stripe_refund(
        charge={"id": "ch_dispute_test", "amount": 9500, "amount_refunded": 4750, "payment_intent": "pi_dispute_test"}
    )
    purchase.refresh_from_db()
    assert (purchase.credits_reclaimed, purchase.credits_shortfall, balance(organization)) == (200, 300, 0)
    dispute = open_dispute(purchase=purchase, reason="The other half is disputed too.", actor=owner)

    with pytest.raises(DisputeRefundTooLarge) as refused:
        resolve_dispute(dispute=dispute, resolution="Too much.", refund_credits=501, actor=staff)
    assert refused.value.extra == {"refundable": 500}

    resolve_dispute(dispute=dispute, resolution="The unrefunded half.", refund_credits=500, actor=staff)
    assert balance(organization) == 500


def paid_stripe_purchase(organization, owner, *, credits: int, payment_id: str) -> Purchase:
    quote = quote_for(organization, credits=credits)
    started = start_purchase(organization=organization, quote_id=quote.pk, provider="stripe", actor=owner)
    return complete_purchase(
        purchase_id=started.purchase.pk,
        payment_id=payment_id,
        amount_paid=started.purchase.amount,
        currency="usd",
        idempotency_key=f"stripe:checkout:{payment_id}",
    )


def refund(purchase: Purchase, share: str) -> Purchase:
    """`charge.refunded` with half or all of the purchase's money refunded so far."""
    paid_cents = int(purchase.amount * 100)
    charge = {
        "id": f"ch_{purchase.provider_payment_id}",
        "amount": paid_cents,
        "amount_refunded": paid_cents // 2 if share == "half" else paid_cents,
        "payment_intent": purchase.provider_payment_id,
    }
    return record_stripe_refund(charge=charge)


def paid_out_dispute(purchase: Purchase, *, credits: int, owner, staff) -> Dispute:
    """A dispute on the purchase, resolved by staff giving `credits` back."""
    dispute = open_dispute(purchase=purchase, reason="Disputed.", actor=owner)
    resolve_dispute(dispute=dispute, resolution=f"{credits} credits given back.", refund_credits=credits, actor=staff)
    return dispute


def test_a_full_refund_after_a_dispute_payout_takes_the_payout_back_too(fake_stripe, organization, owner, staff):
    purchase = paid_stripe_purchase(organization, owner, credits=200, payment_id="pi_payout_then_refund")
    assert (purchase.credits, balance(organization)) == (200, 200)
    dispute = paid_out_dispute(purchase, credits=200, owner=owner, staff=staff)
    assert balance(organization) == 400

    for _ in range(2):  # a replayed refund takes nothing more
        refund(purchase, "all")

    purchase.refresh_from_db()
    assert balance(organization) == 0
    assert (purchase.status, purchase.refunded_amount) == ("refunded", purchase.amount)
    assert (purchase.credits_reclaimed, purchase.credits_shortfall) == (400, 0)
    taken = Transaction.objects.get(kind=Transaction.Kind.REFUND)
    assert taken.metadata["disputePayoutsCovered"] == 200
    dispute.refresh_from_db()
    assert (dispute.status, dispute.credits_refunded) == ("resolved", 200)
    assert verify_ledger().ok


def test_the_outside_checks_case_through_the_portal_the_admin_and_the_webhook(
    fake_stripe, deliver, client, superuser, organization, owner
):
    purchase = paid_stripe_purchase(organization, owner, credits=200, payment_id="pi_outside_check")
    client.force_login(owner)
    client.post(f"/billing/purchases/{purchase.pk}/dispute", {"reason": "I was charged but want my money back."})
    dispute = Dispute.objects.get(purchase=purchase)
    client.force_login(superuser)
    resolve_in_admin(client, dispute, "200")
    assert balance(organization) == 400
    charge = fake_stripe.put(
        {
            "id": "ch_outside_check",
            "object": "charge",
            "amount": int(purchase.amount * 100),
            "amount_refunded": int(purchase.amount * 100),
            "refunded": True,
            "currency": "usd",
            "paid": True,
            "status": "succeeded",
            "payment_intent": "pi_outside_check",
            "customer": None,
            "livemode": False,
            "created": 1700000000,
            "metadata": {},
        }
    )

    assert deliver(stripe_event("charge.refunded", charge)).status_code == 200

    purchase.refresh_from_db()
    assert balance(organization) == 0
    assert (purchase.credits_reclaimed, purchase.credits_shortfall, purchase.status) == (400, 0, "refunded")
    assert verify_ledger().ok


def test_a_payout_and_a_partial_refund_end_the_same_in_either_order(fake_stripe, organization, owner, staff):
    first = paid_stripe_purchase(organization, owner, credits=200, payment_id="pi_payout_first")
    paid_out_dispute(first, credits=200, owner=owner, staff=staff)
    refund(first, "half")  # half the money: 100 of the purchase and the 100 of the payout it now covers
    first.refresh_from_db()
    assert (first.credits_reclaimed, first.credits_shortfall, balance(organization)) == (200, 0, 200)
    # Nothing is left to give back in a dispute, and a replay takes nothing.
    assert get_dispute_refundable_credits(purchase=first) == 0
    refund(first, "half")
    assert balance(organization) == 200

    second = paid_stripe_purchase(organization, owner, credits=200, payment_id="pi_refund_first")
    refund(second, "half")
    dispute = open_dispute(purchase=second, reason="Disputed in full.", actor=owner)
    with pytest.raises(DisputeRefundTooLarge) as refused:
        resolve_dispute(dispute=dispute, resolution="All of it in credits.", refund_credits=200, actor=staff)
    assert refused.value.extra == {"refundable": 100}
    resolve_dispute(dispute=dispute, resolution="The unrefunded half.", refund_credits=100, actor=staff)

    assert balance(organization) == 200 + 200
    # The rest of the money back: each purchase ends with nothing, its payouts covered by the money.
    refund(first, "all")
    refund(second, "all")
    first.refresh_from_db()
    second.refresh_from_db()
    assert balance(organization) == 0
    assert (first.credits_reclaimed, second.credits_reclaimed) == (400, 300)
    assert verify_ledger().ok


def test_a_payout_within_what_the_money_left_is_kept(fake_stripe, organization, owner, staff):
    purchase = paid_stripe_purchase(organization, owner, credits=200, payment_id="pi_small_payout")
    paid_out_dispute(purchase, credits=50, owner=owner, staff=staff)

    refund(purchase, "half")

    purchase.refresh_from_db()
    assert (purchase.credits_reclaimed, balance(organization)) == (100, 150)
    assert "disputePayoutsCovered" not in Transaction.objects.get(kind=Transaction.Kind.REFUND).metadata


def test_a_refund_after_a_payout_records_what_was_already_spent(fake_stripe, organization, owner, staff):
    purchase = paid_stripe_purchase(organization, owner, credits=200, payment_id="pi_payout_spent")
    paid_out_dispute(purchase, credits=200, owner=owner, staff=staff)
    spend_credits(organization=organization, amount=350, reason="usage", idempotency_key="t:spend-payout")

    refund(purchase, "all")

    purchase.refresh_from_db()
    assert balance(organization) == 0
    assert (purchase.credits_reclaimed, purchase.credits_shortfall) == (50, 350)
    shortfall = AuditEvent.objects.get(event="refund_shortfall", target=f"purchase:{purchase.pk}")
    assert (shortfall.new_value["requested"], shortfall.new_value["shortfall"]) == (400, 350)
    assert verify_ledger().ok


def test_a_chargeback_lost_after_a_payout_takes_the_payout_back_too(fake_stripe, organization, owner, staff):
    purchase = paid_stripe_purchase(organization, owner, credits=200, payment_id="pi_payout_chargeback")
    paid_out_dispute(purchase, credits=200, owner=owner, staff=staff)
    lost = {
        "id": "dp_payout_chargeback",
        "amount": int(purchase.amount * 100),
        "charge": "ch_payout_chargeback",
        "payment_intent": "pi_payout_chargeback",
        "reason": "fraudulent",
        "status": "lost",
    }

    for _ in range(2):
        record_stripe_dispute_closed(dispute=lost)

    purchase.refresh_from_db()
    assert balance(organization) == 0
    assert (purchase.credits_reclaimed, purchase.credits_shortfall) == (400, 0)
    assert verify_ledger().ok


# --- Through the admin action ------------------------------------------------------------------


def resolve_in_admin(client, dispute: Dispute, refund_credits: str):
    return client.post(
        reverse("admin:billing_dispute_changelist"),
        {
            "action": "resolve_disputes",
            "_selected_action": [dispute.pk],
            "apply": "1",
            "resolution": "Checked by staff.",
            "refund_credits": refund_credits,
        },
    )


def admin_messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_the_admin_form_states_the_maximum(dispute, superuser, client):
    client.force_login(superuser)

    form = client.post(
        reverse("admin:billing_dispute_changelist"), {"action": "resolve_disputes", "_selected_action": [dispute.pk]}
    )

    page = form.content.decode()
    assert form.status_code == 200
    assert f"At most 500 for dispute #{dispute.pk}" in page
    assert "at most 500 credits back" in page


def test_the_admin_action_refuses_one_credit_over_and_names_the_maximum(dispute, superuser, client, organization):
    client.force_login(superuser)
    transactions_before = Transaction.objects.count()

    response = resolve_in_admin(client, dispute, "501")

    assert response.status_code == 302
    messages = admin_messages(response)
    assert any(f"Dispute #{dispute.pk}: At most 500 credits" in message for message in messages), messages
    assert "0 dispute(s) resolved." in messages
    assert_nothing_changed(dispute, organization, balance_before=500, transactions_before=transactions_before)


def test_the_admin_action_gives_back_up_to_the_maximum(dispute, superuser, client, organization):
    client.force_login(superuser)

    response = resolve_in_admin(client, dispute, "500")

    assert "1 dispute(s) resolved." in admin_messages(response)
    dispute.refresh_from_db()
    assert (dispute.status, dispute.credits_refunded, balance(organization)) == ("resolved", 500, 1000)


def test_the_admin_action_counts_an_earlier_dispute_of_the_same_purchase(
    medium_pack, dispute, owner, superuser, client, organization
):
    client.force_login(superuser)
    resolve_in_admin(client, dispute, "450")
    second = open_dispute(purchase=medium_pack, reason="Disputing the rest as well.", actor=owner)
    transactions_before = Transaction.objects.count()

    form = client.post(
        reverse("admin:billing_dispute_changelist"), {"action": "resolve_disputes", "_selected_action": [second.pk]}
    )
    refused = resolve_in_admin(client, second, "51")

    assert f"At most 50 for dispute #{second.pk}" in form.content.decode()
    assert any(f"Dispute #{second.pk}: At most 50 credits" in message for message in admin_messages(refused))
    assert_nothing_changed(second, organization, balance_before=950, transactions_before=transactions_before)
    resolve_in_admin(client, second, "50")
    second.refresh_from_db()
    assert (second.status, second.credits_refunded, balance(organization)) == ("resolved", 50, 1000)
