"""dj-stripe receivers: thin callers of billing.services, run inside dj-stripe's transaction.

dj-stripe verifies the `Stripe-Signature` of each delivery to /stripe/webhook/<uuid>/
(a forged or stale one is a 400 and reaches no receiver), stores the Event once, and
sends these signals in the same database transaction; an exception here rolls back the
whole event, so Stripe delivers it again later (how an event that arrives before the
payment it refers to gets applied: `PaymentNotRecorded`, and any real error such as the
database being down). An event about an object that is not ours (a charge or a Checkout
Session of another system on the same Stripe account) is logged and acknowledged, changing
nothing, so Stripe does not retry it for days.
"""

from djstripe.event_handlers import djstripe_receiver

from billing import services


@djstripe_receiver(["checkout.session.completed", "checkout.session.async_payment_succeeded"])
def on_checkout_session_paid(sender, event, **kwargs):
    services.record_stripe_checkout_completed(session=event.data["object"])


@djstripe_receiver(["checkout.session.expired", "checkout.session.async_payment_failed"])
def on_checkout_session_expired(sender, event, **kwargs):
    services.record_stripe_checkout_expired(session=event.data["object"])


@djstripe_receiver("invoice.paid")
def on_invoice_paid(sender, event, **kwargs):
    services.record_stripe_invoice_paid(invoice=event.data["object"])


@djstripe_receiver("invoice_payment.paid")
def on_invoice_payment_paid(sender, event, **kwargs):
    services.record_stripe_invoice_payment(invoice_payment=event.data["object"])


@djstripe_receiver(["customer.subscription.created", "customer.subscription.updated"])
def on_subscription_updated(sender, event, **kwargs):
    services.record_stripe_subscription(subscription=event.data["object"])


@djstripe_receiver("customer.subscription.deleted")
def on_subscription_deleted(sender, event, **kwargs):
    services.record_stripe_subscription(subscription=event.data["object"], deleted=True)


@djstripe_receiver("charge.refunded")
def on_charge_refunded(sender, event, **kwargs):
    services.record_stripe_refund(charge=event.data["object"])


@djstripe_receiver("charge.dispute.created")
def on_charge_dispute_created(sender, event, **kwargs):
    services.record_stripe_dispute(dispute=event.data["object"])


@djstripe_receiver("charge.dispute.closed")
def on_charge_dispute_closed(sender, event, **kwargs):
    services.record_stripe_dispute_closed(dispute=event.data["object"])
