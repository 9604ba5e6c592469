"""Portal pages: buy credits, the plan, purchase history with receipts; the PayPal return and webhook."""

import json
import logging
import re
from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.scoping import get_request_membership, get_request_organization
from apikeys.services import count_active_keys
from billing import paypal, selectors, services
from billing.errors import MalformedProviderEvent, PaymentNotRecorded
from billing.forms import DisputeForm, PayForm, PlanChangeForm, QuoteForm
from billing.models import Provider, Purchase, Quote
from core.errors import ApplicationError
from credits.selectors import get_wallet

logger = logging.getLogger(__name__)

# A purchase id in a return URL (str.isdigit() also takes "²", which int() refuses).
_PURCHASE_ID = re.compile(r"[0-9]{1,18}")


def _is_client_admin(request: HttpRequest) -> bool:
    membership = get_request_membership(request)
    return membership is not None and membership.is_client_admin


@login_required
def buy(request: HttpRequest) -> HttpResponse:
    """Packs, a custom amount with a live price breakdown, a promotion code and the provider."""
    organization = get_request_organization(request)
    quote: Quote | None = None
    form = QuoteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            quote = services.create_quote(
                organization=organization,
                credits=None if form.cleaned_data["package"] else form.cleaned_data["credits"],
                package_id=form.cleaned_data["package"].pk if form.cleaned_data["package"] else None,
                promo_code=form.cleaned_data["promo_code"],
                actor=request.user,
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
    if request.GET.get("canceled"):
        _report_canceled_checkout(request, organization)
    providers = services.available_providers()
    context = {
        "organization": organization,
        "wallet": get_wallet(organization=organization),
        "packages": selectors.list_active_packages(),
        "tiers": selectors.list_bulk_tiers(),
        "plan": organization.plan,
        "rate": settings.CREDIT_BASE_RATE,
        "min_credits": settings.BILLING_MIN_CUSTOM_CREDITS,
        "max_credits": settings.BILLING_MAX_CUSTOM_CREDITS,
        "form": form,
        "quote": quote,
        "providers": [(value, Provider(value).label) for value in providers],
        "can_buy": _is_client_admin(request),
    }
    return render(request, "billing/buy.html", context)


def _report_canceled_checkout(request: HttpRequest, organization) -> None:
    """Back from Stripe (`purchase`) or PayPal (`token`, the order) with "cancel": release the purchase."""
    purchase_id = request.GET.get("purchase", "")
    order_id = request.GET.get("token", "")
    purchase = None
    is_id = _PURCHASE_ID.fullmatch(purchase_id) is not None
    if _is_client_admin(request) and (is_id or order_id):
        try:
            purchase = services.release_canceled_checkout(
                organization=organization,
                purchase_id=int(purchase_id) if is_id else None,
                paypal_order_id=order_id,
            )
        except ApplicationError as exc:
            messages.warning(
                request,
                f"{exc.message} If you did not pay, nothing is charged and the payment's promotion code, if any, "
                "can be used again within a day.",
            )
            return
    if purchase is None or purchase.status in (Purchase.Status.EXPIRED, Purchase.Status.FAILED):
        messages.info(request, "The payment was canceled; nothing was charged.")
    elif purchase.is_completed:
        messages.success(request, f"This payment went through: {purchase.credits:,} credits added.")
    else:
        messages.info(
            request,
            "This payment is still being processed by the provider: the credits come when it completes.",
        )


@login_required
@require_POST
def pay(request: HttpRequest) -> HttpResponse:
    organization = get_request_organization(request)
    if not _is_client_admin(request):
        messages.error(request, "Only a client admin can buy credits.")
        return redirect("billing:buy")
    form = PayForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a payment method for a current quote.")
        return redirect("billing:buy")
    try:
        started = services.start_purchase(
            organization=organization,
            quote_id=form.cleaned_data["quote_id"],
            provider=form.cleaned_data["provider"],
            actor=request.user,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("billing:buy")
    if started.checkout_url:
        return redirect(started.checkout_url)
    messages.success(request, f"{started.purchase.credits:,} credits added.")
    return redirect("billing:receipt", purchase_id=started.purchase.pk)


@login_required
def checkout_return(request: HttpRequest) -> HttpResponse:
    """Back from Stripe Checkout: the webhook grants the credits; the page says where the purchase stands."""
    purchase_id = request.GET.get("purchase", "")
    if _PURCHASE_ID.fullmatch(purchase_id):
        purchase = Purchase.objects.filter(pk=int(purchase_id), organization=get_request_organization(request)).first()
        if purchase is not None:
            if purchase.is_completed:
                messages.success(request, f"Payment received: {purchase.credits:,} credits added.")
                return redirect("billing:receipt", purchase_id=purchase.pk)
            if purchase.status == Purchase.Status.PENDING:
                messages.info(
                    request,
                    "Stripe is confirming the payment: the credits appear as soon as it does (seconds for a card; "
                    "some bank payments take a few days).",
                )
            elif purchase.status == Purchase.Status.FAILED and purchase.provider_payment_id:
                messages.error(request, "The payment could not be matched to your quote; our staff will look at it.")
            else:
                messages.error(
                    request,
                    "The payment did not go through (it failed or the checkout expired): no credits were added and "
                    "nothing was charged. Ask for a new quote and try again.",
                )
                return redirect("billing:buy")
    return redirect("billing:history")


@login_required
def paypal_return(request: HttpRequest) -> HttpResponse:
    """Back from approving a PayPal order: capture it (the webhook may beat us to the grant; either grants once)."""
    order_id = request.GET.get("token", "")
    organization = get_request_organization(request)
    purchase = Purchase.objects.filter(
        provider=Provider.PAYPAL, provider_reference=order_id, organization=organization
    ).first()
    if purchase is None:
        messages.error(request, "We could not find this PayPal payment.")
        return redirect("billing:buy")
    if purchase.status != Purchase.Status.PENDING and not purchase.is_completed:
        # Released (canceled here, or expired): its promotion may be another purchase's now,
        # so the order is left to lapse at PayPal rather than captured.
        messages.error(request, "This payment was canceled or has expired; nothing was charged. Please buy again.")
        return redirect("billing:buy")
    if not purchase.is_completed:
        try:
            capture = paypal.capture_order(order_id=order_id)
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect("billing:history")
        if capture is None or capture.status != "COMPLETED":
            messages.warning(request, "PayPal has not completed the payment yet; the credits come when it does.")
            return redirect("billing:history")
        purchase = services.record_paypal_capture(
            order_id=order_id, capture_id=capture.capture_id, amount=capture.amount, currency=capture.currency
        )
    if purchase.is_completed:
        messages.success(request, f"Payment received: {purchase.credits:,} credits added.")
        return redirect("billing:receipt", purchase_id=purchase.pk)
    messages.error(request, "The payment could not be matched to your quote; our staff will look at it.")
    return redirect("billing:history")


@csrf_exempt
@require_POST
def paypal_webhook(request: HttpRequest) -> HttpResponse:
    """PayPal's webhook: verified by PayPal's verification call; a forged one is a 400 and changes nothing.

    A completed capture grants the purchase's credits; a completed refund or reversal of a
    capture takes back its share. Other events, and captures we have no purchase for, are
    acknowledged and change nothing; a verified event whose resource or amount cannot be
    read is a 400 and changes nothing.
    """
    raw = request.body.decode("utf-8", errors="replace")
    try:
        event = json.loads(raw)
    except ValueError:
        return HttpResponseBadRequest("invalid JSON")
    if not isinstance(event, dict) or not paypal.verify_webhook(headers=request.headers, raw_body=raw):
        logger.warning("PayPal webhook failed verification")
        return HttpResponseBadRequest("signature verification failed")
    try:
        refund = paypal.refund_from_webhook(event)
        capture = paypal.capture_from_webhook(event)
    except MalformedProviderEvent as exc:
        logger.warning("PayPal webhook %s refused: %s", event.get("id"), exc.message)
        return HttpResponseBadRequest(exc.message)
    if refund is not None:
        if refund.status and refund.status != "COMPLETED":
            return JsonResponse({"received": True, "ignored": True})
        try:
            purchase = services.record_paypal_refund(
                capture_id=refund.capture_id,
                refund_id=refund.refund_id,
                total_refunded=refund.total_refunded,
                currency=refund.currency,
                reversal=refund.reversal,
            )
        except PaymentNotRecorded as exc:  # PayPal delivers it again, after the capture's own event
            return JsonResponse({"received": False, "error": exc.code, "detail": exc.message}, status=409)
        return JsonResponse({"received": True, "purchase": purchase.pk if purchase else None})
    if capture is None or capture.status != "COMPLETED":
        return JsonResponse({"received": True, "ignored": True})
    purchase = services.record_paypal_capture(
        order_id=capture.order_id, capture_id=capture.capture_id, amount=capture.amount, currency=capture.currency
    )
    return JsonResponse({"received": True, "purchase": purchase.pk if purchase else None})


@login_required
def plan(request: HttpRequest) -> HttpResponse:
    organization = get_request_organization(request)
    if request.GET.get("subscribed"):
        messages.success(request, "Thank you: the plan changes as soon as Stripe confirms the payment.")
    subscription = selectors.get_subscription(organization=organization)
    context = {
        "organization": organization,
        "plan": organization.plan,
        "plans": selectors.list_active_plans(),
        "subscription": subscription,
        "api_keys_used": count_active_keys(organization=organization, now=timezone.now()),
        "can_manage": _is_client_admin(request),
        "sandbox": services.sandbox_allowed(),
        "stripe": services.stripe_configured(),
    }
    return render(request, "billing/plan.html", context)


@login_required
@require_POST
def plan_change(request: HttpRequest) -> HttpResponse:
    organization = get_request_organization(request)
    if not _is_client_admin(request):
        messages.error(request, "Only a client admin can change the plan.")
        return redirect("billing:plan")
    form = PlanChangeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a plan.")
        return redirect("billing:plan")
    try:
        change = services.change_subscription(
            organization=organization,
            plan_code=form.cleaned_data["plan"],
            provider=form.cleaned_data["provider"] or None,
            actor=request.user,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("billing:plan")
    if change.checkout_url:
        return redirect(change.checkout_url)
    organization.refresh_from_db()
    messages.success(request, f"Your organization is on the {organization.plan.name} plan.")
    return redirect("billing:plan")


@login_required
@require_POST
def plan_cancel(request: HttpRequest) -> HttpResponse:
    organization = get_request_organization(request)
    if not _is_client_admin(request):
        messages.error(request, "Only a client admin can cancel the plan.")
        return redirect("billing:plan")
    try:
        subscription = services.cancel_subscription(organization=organization, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("billing:plan")
    if subscription.cancel_at_period_end and subscription.is_live:
        messages.success(request, "The subscription ends at the end of the paid period.")
    else:
        messages.success(request, "The subscription is canceled; your organization is on the Free plan.")
    return redirect("billing:plan")


@login_required
@require_POST
def stripe_portal(request: HttpRequest) -> HttpResponse:
    """Stripe's customer portal, for payment methods and invoices."""
    organization = get_request_organization(request)
    subscription = selectors.get_subscription(organization=organization)
    if not _is_client_admin(request) or subscription is None or not subscription.stripe_customer_id:
        messages.error(request, "There is no Stripe billing account to manage.")
        return redirect("billing:plan")
    from billing import stripe_gateway

    try:
        return redirect(stripe_gateway.create_portal_session(customer_id=subscription.stripe_customer_id))
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("billing:plan")


@login_required
def history(request: HttpRequest) -> HttpResponse:
    purchases = list(selectors.list_purchases_for_request(request)[:200])
    return render(request, "billing/history.html", {"purchases": purchases, "dispute_form": DisputeForm()})


@login_required
def receipt(request: HttpRequest, purchase_id: int) -> HttpResponse:
    purchase = selectors.get_purchase_for_request(request, purchase_id)
    disputes = list(purchase.disputes.all())
    context = {
        "purchase": purchase,
        "quote": purchase.quote,
        "disputes": disputes,
        "money_lost": sum((d.money_lost for d in disputes), Decimal("0.00")),
        "dispute_form": DisputeForm(),
        "can_dispute": purchase.is_completed and not any(d.status == "open" for d in purchase.disputes.all()),
    }
    return render(request, "billing/receipt.html", context)


@login_required
@require_POST
def dispute(request: HttpRequest, purchase_id: int) -> HttpResponse:
    purchase = selectors.get_purchase_for_request(request, purchase_id)
    form = DisputeForm(request.POST)
    if not form.is_valid():
        for error in form.errors.get("reason", []):
            messages.error(request, error)
        return redirect("billing:receipt", purchase_id=purchase.pk)
    try:
        services.open_dispute(purchase=purchase, reason=form.cleaned_data["reason"], actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Thank you: our staff will look at this charge and reply by email.")
    return redirect("billing:receipt", purchase_id=purchase.pk)
