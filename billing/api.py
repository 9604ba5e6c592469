"""The customer billing API: prices, quotes, purchases, balance, history and the subscription.

Session or API-key (`Authorization: Bearer cdk_live_...`) authentication; everything is
scoped to the request's organization (accounts.scoping). Reads are open to every member and
every key. Pricing, buying and changing or canceling the plan (`BillingChangeApi`) need, with
an API key, a key with the `billing` scope (a plain `query` key is a 403); buying and plan
changes also need a client admin. Money is a decimal string in `usd`.
"""

from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.scoping import get_request_membership, get_request_organization
from apikeys.authentication import ApiKeyAuthentication
from apikeys.permissions import ApiKeyHasScope, missing_scope_message
from apikeys.services import count_active_keys
from billing import selectors, services
from billing.models import Provider
from billing.pricing import money_str
from billing.serializers import PlanSerializer, QuoteSerializer, plan_data
from core.api import MAX_BIGINT, StrictCharField, StrictIntegerField, parse_positive_id
from core.errors import Forbidden
from core.schema import ErrorSerializer, error_example
from credits.selectors import MAX_PAGE_SIZE, get_wallet, list_wallet_entries

QUOTE_EXAMPLE = {
    "quoteId": "6f1c2a9e-3b1d-4c55-9a57-0d2f1e6b7c10",
    "credits": 5000,
    "bonusCredits": 0,
    "subtotal": "500.00",
    "discounts": [
        {"kind": "bulk", "label": "Bulk discount 10% (from 5,000 credits)", "amount": "50.00"},
        {"kind": "promotion", "label": "Promotion SPRING 20%", "amount": "90.00"},
    ],
    "total": "360.00",
    "currency": "usd",
    "expiresAt": "2026-11-21T10:30:00Z",
}


UNAUTHENTICATED = error_example(
    "Not signed in", "not_authenticated", "Authentication credentials were not provided.", 401
)
NOT_ADMIN = error_example("Not a client admin", "permission_denied", "Only a client admin can do this.", 403)
BILLING_SCOPE = "billing"
SCOPE_MISSING = error_example(
    "API key without the billing scope", "permission_denied", missing_scope_message(BILLING_SCOPE), 403
)
NOT_AUTHENTICATED_RESPONSE = OpenApiResponse(
    ErrorSerializer, description="not_authenticated: no, or an invalid or inactive, credential"
)


class CustomerApi(APIView):
    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]

    def require_client_admin(self, request: Request) -> None:
        membership = get_request_membership(request)
        if membership is None or not membership.is_client_admin:
            raise Forbidden("Only a client admin can do this.")


class BillingChangeApi(CustomerApi):
    """Endpoints that price, buy or change the plan: an API key needs the `billing` scope.

    A key issued for querying (the default scope, `query`) must not move money or change
    plans; a session is unaffected. Checked before the body is read.
    """

    permission_classes = [IsAuthenticated, ApiKeyHasScope]
    required_api_key_scope = BILLING_SCOPE


# --- Prices ------------------------------------------------------------------------------


class CreditRateApi(CustomerApi):
    @extend_schema(
        operation_id="credits_rate",
        summary="The price of one credit and the discounts that apply",
        description=(
            "Custom amounts cost `rate` per credit. The best ONE of the bulk tier reached and the plan's "
            "subscriber discount applies (never both); a promotion code comes on top. Packs get the subscriber "
            "discount, not bulk tiers."
        ),
        responses={
            200: inline_serializer(
                "CreditRate",
                {
                    "rate": serializers.CharField(),
                    "currency": serializers.CharField(),
                    "minCredits": serializers.IntegerField(),
                    "maxCredits": serializers.IntegerField(),
                    "bulkTiers": serializers.ListField(child=serializers.DictField()),
                    "plan": serializers.CharField(),
                    "subscriberDiscountPercent": serializers.CharField(),
                    "providers": serializers.ListField(child=serializers.CharField()),
                },
            ),
            401: NOT_AUTHENTICATED_RESPONSE,
        },
        examples=[
            OpenApiExample(
                "Rate",
                value={
                    "rate": "0.10",
                    "currency": "usd",
                    "minCredits": 10,
                    "maxCredits": 1000000,
                    "bulkTiers": [
                        {"minCredits": 1000, "percent": "5.00"},
                        {"minCredits": 5000, "percent": "10.00"},
                        {"minCredits": 20000, "percent": "15.00"},
                    ],
                    "plan": "starter",
                    "subscriberDiscountPercent": "5.00",
                    "providers": ["stripe", "paypal"],
                },
                response_only=True,
            ),
            UNAUTHENTICATED,
        ],
    )
    def get(self, request: Request) -> Response:
        organization = get_request_organization(request)
        return Response(
            {
                "rate": money_str(settings.CREDIT_BASE_RATE),
                "currency": settings.CURRENCY,
                "minCredits": settings.BILLING_MIN_CUSTOM_CREDITS,
                "maxCredits": settings.BILLING_MAX_CUSTOM_CREDITS,
                "bulkTiers": [
                    {"minCredits": tier.min_credits, "percent": money_str(tier.percent)}
                    for tier in selectors.list_bulk_tiers()
                ],
                "plan": organization.plan_id,
                "subscriberDiscountPercent": money_str(organization.plan.subscriber_discount_percent),
                "providers": services.available_providers(),
            }
        )


class CreditPackagesApi(CustomerApi):
    @extend_schema(
        operation_id="credits_packages",
        summary="Credit packs on sale",
        responses={
            200: inline_serializer(
                "CreditPackages",
                {"packages": serializers.ListField(child=serializers.DictField())},
            ),
            401: NOT_AUTHENTICATED_RESPONSE,
        },
        examples=[
            OpenApiExample(
                "Packs",
                value={
                    "packages": [
                        {"id": 1, "name": "Small pack", "credits": 100, "price": "9.00", "currency": "usd"},
                        {"id": 2, "name": "Medium pack", "credits": 500, "price": "42.50", "currency": "usd"},
                    ]
                },
                response_only=True,
            ),
            UNAUTHENTICATED,
        ],
    )
    def get(self, request: Request) -> Response:
        get_request_organization(request)
        return Response(
            {
                "packages": [
                    {
                        "id": package.pk,
                        "name": package.name,
                        "credits": package.credits,
                        "price": money_str(package.price),
                        "currency": settings.CURRENCY,
                    }
                    for package in selectors.list_active_packages()
                ]
            }
        )


# --- Wallet --------------------------------------------------------------------------------


class CreditBalanceApi(CustomerApi):
    @extend_schema(
        operation_id="credits_balance",
        summary="The organization's balance",
        responses={
            200: inline_serializer(
                "CreditBalance",
                {
                    "orgId": serializers.IntegerField(),
                    "credits": serializers.IntegerField(),
                    "status": serializers.ChoiceField(choices=["active", "paused"]),
                    "overdraftLimit": serializers.IntegerField(),
                    "lowCreditThreshold": serializers.IntegerField(allow_null=True),
                    "plan": serializers.CharField(),
                    "updatedAt": serializers.DateTimeField(),
                },
            ),
            401: NOT_AUTHENTICATED_RESPONSE,
        },
        examples=[
            OpenApiExample(
                "Balance",
                value={
                    "orgId": 7,
                    "credits": 4200,
                    "status": "active",
                    "overdraftLimit": 0,
                    "lowCreditThreshold": 100,
                    "plan": "starter",
                    "updatedAt": "2026-11-21T10:00:00Z",
                },
                response_only=True,
            ),
            UNAUTHENTICATED,
        ],
    )
    def get(self, request: Request) -> Response:
        organization = get_request_organization(request)
        wallet = get_wallet(organization=organization)
        return Response(
            {
                "orgId": organization.pk,
                "credits": wallet.balance,
                "status": wallet.status,
                "overdraftLimit": wallet.overdraft_limit,
                "lowCreditThreshold": wallet.low_credit_threshold,
                "plan": organization.plan_id,
                "updatedAt": wallet.updated_at,
            }
        )


class CreditSummaryApi(CustomerApi):
    @extend_schema(
        operation_id="credits_summary",
        summary="Credits in and out over the last days",
        parameters=[OpenApiParameter("days", int, description="1 to 366, default 30.")],
        responses={
            200: inline_serializer("CreditSummary", {"balance": serializers.IntegerField()}),
            400: OpenApiResponse(ErrorSerializer, description="validation_error: `days` out of range"),
            401: NOT_AUTHENTICATED_RESPONSE,
        },
        examples=[
            OpenApiExample(
                "Summary",
                value={
                    "balance": 4200,
                    "status": "active",
                    "days": 30,
                    "purchased": 5000,
                    "subscription": 200,
                    "promotions": 0,
                    "spent": 1000,
                    "refunded": 0,
                    "other": 0,
                    "usageEvents": 250,
                    "amountPaid": "450.00",
                    "currency": "usd",
                },
                response_only=True,
            ),
            error_example(
                "Bad days", "validation_error", "Invalid input.", 400, fields={"days": ["Must be 1 to 366."]}
            ),
            UNAUTHENTICATED,
        ],
    )
    def get(self, request: Request) -> Response:
        organization = get_request_organization(request)
        days = request.query_params.get("days", "30")
        if not days.isdigit() or not 1 <= int(days) <= 366:
            raise serializers.ValidationError({"days": ["Must be 1 to 366."]})
        summary = selectors.get_credit_summary(organization=organization, days=int(days))
        return Response(
            {
                "balance": summary.balance,
                "status": summary.status,
                "days": summary.days,
                "purchased": summary.purchased,
                "subscription": summary.subscription,
                "promotions": summary.promotions,
                "spent": summary.spent,
                "refunded": summary.refunded,
                "other": summary.other,
                "usageEvents": summary.usage_events,
                "amountPaid": summary.purchases_total,
                "currency": settings.CURRENCY,
            }
        )


class CreditTransactionsApi(CustomerApi):
    @extend_schema(
        operation_id="credits_transactions",
        summary="The wallet's history, newest first",
        description="Keyset pagination: pass the answer's `nextBefore` as `before` for the next page (null: last).",
        parameters=[
            OpenApiParameter("before", int, description="Entry id to continue before."),
            OpenApiParameter("limit", int, description=f"1 to {MAX_PAGE_SIZE}, default 50."),
        ],
        responses={
            200: inline_serializer("CreditTransactions", {"nextBefore": serializers.IntegerField()}),
            400: OpenApiResponse(ErrorSerializer, description="validation_error: `before` or `limit` out of range"),
            401: NOT_AUTHENTICATED_RESPONSE,
        },
        examples=[
            OpenApiExample(
                "Page",
                value={
                    "transactions": [
                        {
                            "id": 981,
                            "transactionId": "3f0c6a86-62a4-4b8f-9d8c-1b61b0f1f0aa",
                            "kind": "purchase",
                            "amount": 500,
                            "balanceAfter": 4200,
                            "memo": "Purchase #12: 500 credits",
                            "createdAt": "2026-11-21T10:00:00Z",
                        }
                    ],
                    "nextBefore": 981,
                },
                response_only=True,
            ),
            error_example(
                "Bad cursor", "validation_error", "Invalid input.", 400, fields={"before": ["Must be an integer."]}
            ),
            UNAUTHENTICATED,
        ],
    )
    def get(self, request: Request) -> Response:
        organization = get_request_organization(request)
        before = request.query_params.get("before")
        before_id = parse_positive_id(before, field="before") if before not in (None, "") else None
        limit_text = request.query_params.get("limit", "50")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_PAGE_SIZE:
            raise serializers.ValidationError({"limit": [f"Must be 1 to {MAX_PAGE_SIZE}."]})
        page = list_wallet_entries(
            wallet=get_wallet(organization=organization), before_id=before_id, limit=int(limit_text)
        )
        return Response(
            {
                "transactions": [
                    {
                        "id": entry.pk,
                        "transactionId": str(entry.transaction_id),
                        "kind": entry.transaction.kind,
                        "amount": entry.amount,
                        "balanceAfter": entry.balance_after,
                        "memo": entry.transaction.memo,
                        "createdAt": entry.created_at,
                    }
                    for entry in page
                ],
                "nextBefore": page.next_before_id,
            }
        )


# --- Quotes and purchases ---------------------------------------------------------------------


class PurchaseValidateApi(BillingChangeApi):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PurchaseValidateInput"

        credits = StrictIntegerField(required=False, min_value=1, max_value=MAX_BIGINT)
        packageId = StrictIntegerField(required=False, min_value=1, max_value=MAX_BIGINT)
        promoCode = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=40)

        def validate(self, attrs: dict) -> dict:
            if ("credits" in attrs) == ("packageId" in attrs):
                raise serializers.ValidationError("Give either credits or packageId.")
            return attrs

    @extend_schema(
        operation_id="credits_purchase_validate",
        summary="Price credits: a quote kept for 30 minutes",
        description=(
            '`{"credits": N}` for a custom amount or `{"packageId": id}` for a pack, with an optional '
            "`promoCode`. The answer is stored on our side; pay it with POST /api/credits/purchase. "
            "With an API key, the key needs the `billing` scope."
        ),
        request=InputSerializer,
        responses={
            200: QuoteSerializer,
            400: OpenApiResponse(
                ErrorSerializer,
                description="validation_error, invalid_credit_amount, promo_invalid, promo_not_active",
            ),
            401: NOT_AUTHENTICATED_RESPONSE,
            403: OpenApiResponse(
                ErrorSerializer, description="permission_denied: an API key without the `billing` scope"
            ),
            404: OpenApiResponse(ErrorSerializer, description="unknown_package"),
            409: OpenApiResponse(ErrorSerializer, description="promo_exhausted, promo_already_redeemed"),
        },
        examples=[
            OpenApiExample("Custom amount", value={"credits": 5000, "promoCode": "SPRING"}, request_only=True),
            OpenApiExample("Pack", value={"packageId": 2}, request_only=True),
            OpenApiExample("Quote", value=QUOTE_EXAMPLE, response_only=True, status_codes=["200"]),
            error_example("Too few", "invalid_credit_amount", "Buy from 10 to 1,000,000 credits.", 400),
            error_example("Unknown pack", "unknown_package", "There is no active credit package with this id.", 404),
            error_example(
                "Promo over",
                "promo_exhausted",
                "This promotion code has reached its maximum number of redemptions.",
                409,
            ),
            error_example(
                "Promo window", "promo_not_active", "The promotion code SPRING is not valid at this time.", 400
            ),
            UNAUTHENTICATED,
            SCOPE_MISSING,
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        quote = services.create_quote(
            organization=get_request_organization(request),
            credits=data.get("credits"),
            package_id=data.get("packageId"),
            promo_code=data.get("promoCode"),
            actor=request.user,
        )
        return Response(QuoteSerializer(quote).data)


class PurchaseApi(BillingChangeApi):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PurchaseInput"

        quoteId = serializers.UUIDField()
        provider = serializers.ChoiceField(choices=Provider.values)

    @extend_schema(
        operation_id="credits_purchase",
        summary="Pay a quote",
        description=(
            'Stripe and PayPal answer `{"checkoutUrl"}` where the customer pays; the credits arrive when the '
            "provider confirms the payment. The sandbox (DEBUG on, no payment keys) completes at once. "
            "Needs a client admin; with an API key, the key needs the `billing` scope."
        ),
        request=InputSerializer,
        responses={
            200: inline_serializer(
                "PurchaseStarted",
                {
                    "checkoutUrl": serializers.URLField(required=False),
                    "success": serializers.BooleanField(required=False),
                    "credits": serializers.IntegerField(required=False),
                    "remainingCredits": serializers.IntegerField(required=False),
                },
            ),
            400: OpenApiResponse(
                ErrorSerializer, description="validation_error, provider_unavailable, amount_too_small"
            ),
            401: NOT_AUTHENTICATED_RESPONSE,
            403: OpenApiResponse(
                ErrorSerializer,
                description=(
                    "permission_denied (not a client admin, or an API key without the `billing` scope), "
                    "sandbox_disabled"
                ),
            ),
            404: OpenApiResponse(ErrorSerializer, description="quote_not_found (also another organization's quote)"),
            409: OpenApiResponse(ErrorSerializer, description="quote_used, promo_exhausted, promo_already_redeemed"),
            410: OpenApiResponse(ErrorSerializer, description="quote_expired"),
            502: OpenApiResponse(ErrorSerializer, description="payment_provider_error"),
        },
        examples=[
            OpenApiExample(
                "Request", value={"quoteId": QUOTE_EXAMPLE["quoteId"], "provider": "stripe"}, request_only=True
            ),
            OpenApiExample(
                "Checkout", value={"checkoutUrl": "https://checkout.stripe.com/c/pay/cs_test_a1"}, response_only=True
            ),
            OpenApiExample(
                "Sandbox", value={"success": True, "credits": 5000, "remainingCredits": 9200}, response_only=True
            ),
            error_example(
                "Provider not configured", "provider_unavailable", "Stripe is not configured on this server.", 400
            ),
            error_example(
                "Too small", "amount_too_small", "Card and PayPal payments need a total of at least $0.50.", 400
            ),
            error_example("Expired", "quote_expired", "This quote has expired: ask for a new one.", 410),
            error_example("Used", "quote_used", "This quote was already used for a purchase: ask for a new one.", 409),
            error_example("Unknown", "quote_not_found", "There is no such quote.", 404),
            error_example(
                "Sandbox off",
                "sandbox_disabled",
                "The sandbox provider only works in a development setup (DEBUG on, no payment keys).",
                403,
            ),
            NOT_ADMIN,
            SCOPE_MISSING,
            UNAUTHENTICATED,
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        organization = get_request_organization(request)
        self.require_client_admin(request)
        started = services.start_purchase(
            organization=organization,
            quote_id=serializer.validated_data["quoteId"],
            provider=serializer.validated_data["provider"],
            actor=request.user,
        )
        if started.checkout_url:
            return Response({"checkoutUrl": started.checkout_url})
        return Response(
            {"success": True, "credits": started.purchase.credits, "remainingCredits": started.remaining_credits}
        )


# --- Subscription ------------------------------------------------------------------------------


def subscription_data(organization) -> dict[str, Any]:
    subscription = selectors.get_subscription(organization=organization)
    live = subscription is not None and subscription.is_live
    return {
        "plan": plan_data(organization.plan),
        "status": subscription.status if subscription else "none",
        "provider": subscription.provider if subscription else None,
        "currentPeriodEnd": subscription.current_period_end if live else None,
        "cancelAtPeriodEnd": subscription.cancel_at_period_end if live else False,
        "plans": [plan_data(plan) for plan in selectors.list_active_plans()],
    }


SUBSCRIPTION_EXAMPLE = {
    "plan": {
        "code": "starter",
        "name": "Starter",
        "monthlyPrice": "19.99",
        "monthlyCredits": 200,
        "currency": "usd",
        "allowsAllQueryTypes": False,
        "allowedQueryTypes": ["standard"],
        "maxApiKeys": 5,
        "requestsPerMinute": 300,
        "subscriberDiscountPercent": "5.00",
    },
    "status": "active",
    "provider": "stripe",
    "currentPeriodEnd": "2026-12-21T10:00:00Z",
    "cancelAtPeriodEnd": False,
    "plans": ["...every active plan, same shape as plan..."],
}


class SubscriptionApi(CustomerApi):
    @extend_schema(
        operation_id="subscription",
        summary="The organization's plan and subscription",
        responses={
            200: inline_serializer("Subscription", {"plan": PlanSerializer(), "status": serializers.CharField()}),
            401: NOT_AUTHENTICATED_RESPONSE,
        },
        examples=[OpenApiExample("Subscription", value=SUBSCRIPTION_EXAMPLE, response_only=True), UNAUTHENTICATED],
    )
    def get(self, request: Request) -> Response:
        return Response(subscription_data(get_request_organization(request)))


class SubscriptionChangeApi(BillingChangeApi):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SubscriptionChangeInput"

        plan = StrictCharField(max_length=32)
        provider = serializers.ChoiceField(choices=[Provider.STRIPE, Provider.SANDBOX], required=False)

    @extend_schema(
        operation_id="subscription_change",
        summary="Change the plan",
        description=(
            "With a live Stripe subscription the price changes at once with proration (an upgrade is invoiced "
            'now). Without one, a paid plan answers `{"checkoutUrl"}` (Stripe Checkout, subscription mode) or, in '
            "the sandbox, changes at once. `free` cancels at the end of the period. The current plan is a 409 "
            "`already_on_plan` (a Stripe subscription set to end may choose it again to keep it). Needs a client "
            "admin; with an API key, the key needs the `billing` scope."
        ),
        request=InputSerializer,
        responses={
            200: inline_serializer("SubscriptionChanged", {"success": serializers.BooleanField()}),
            400: OpenApiResponse(ErrorSerializer, description="validation_error, unknown_plan, provider_unavailable"),
            401: NOT_AUTHENTICATED_RESPONSE,
            403: OpenApiResponse(
                ErrorSerializer,
                description="permission_denied: not a client admin, or an API key without the `billing` scope",
            ),
            409: OpenApiResponse(ErrorSerializer, description="already_on_plan"),
        },
        examples=[
            OpenApiExample("Request", value={"plan": "professional"}, request_only=True),
            OpenApiExample(
                "Changed", value={"success": True, **SUBSCRIPTION_EXAMPLE}, response_only=True, status_codes=["200"]
            ),
            OpenApiExample(
                "Checkout", value={"checkoutUrl": "https://checkout.stripe.com/c/pay/cs_test_b2"}, response_only=True
            ),
            error_example("Unknown plan", "unknown_plan", "There is no active plan with the code 'gold'.", 400),
            error_example("Current plan", "already_on_plan", "Your organization is already on the Starter plan.", 409),
            NOT_ADMIN,
            SCOPE_MISSING,
            UNAUTHENTICATED,
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        organization = get_request_organization(request)
        self.require_client_admin(request)
        change = services.change_subscription(
            organization=organization,
            plan_code=serializer.validated_data["plan"],
            provider=serializer.validated_data.get("provider"),
            actor=request.user,
        )
        if change.checkout_url:
            return Response({"checkoutUrl": change.checkout_url})
        organization.refresh_from_db()
        return Response({"success": True, **subscription_data(organization)})


class SubscriptionCancelApi(BillingChangeApi):
    @extend_schema(
        operation_id="subscription_cancel",
        summary="Cancel the subscription at the end of the period",
        description="Needs a client admin; with an API key, the key needs the `billing` scope.",
        request=None,
        responses={
            200: inline_serializer("SubscriptionCanceled", {"success": serializers.BooleanField()}),
            401: NOT_AUTHENTICATED_RESPONSE,
            403: OpenApiResponse(
                ErrorSerializer,
                description="permission_denied: not a client admin, or an API key without the `billing` scope",
            ),
            409: OpenApiResponse(ErrorSerializer, description="no_subscription"),
        },
        examples=[
            OpenApiExample(
                "Canceled",
                value={"success": True, **SUBSCRIPTION_EXAMPLE, "cancelAtPeriodEnd": True},
                response_only=True,
            ),
            error_example("None", "no_subscription", "Your organization has no paid subscription.", 409),
            NOT_ADMIN,
            SCOPE_MISSING,
            UNAUTHENTICATED,
        ],
    )
    def post(self, request: Request) -> Response:
        organization = get_request_organization(request)
        self.require_client_admin(request)
        services.cancel_subscription(organization=organization, actor=request.user)
        organization.refresh_from_db()
        return Response({"success": True, **subscription_data(organization)})


class SubscriptionQuotasApi(CustomerApi):
    @extend_schema(
        operation_id="subscription_quotas",
        summary="The plan's quotas and how much of them is used",
        responses={
            200: inline_serializer("Quotas", {"plan": serializers.CharField()}),
            401: NOT_AUTHENTICATED_RESPONSE,
        },
        examples=[
            OpenApiExample(
                "Quotas",
                value={
                    "plan": "starter",
                    "allowsAllQueryTypes": False,
                    "allowedQueryTypes": ["standard"],
                    "maxApiKeys": 5,
                    "apiKeysUsed": 2,
                    "requestsPerMinute": 300,
                    "monthlyCredits": 200,
                    "subscriberDiscountPercent": "5.00",
                },
                response_only=True,
            ),
            UNAUTHENTICATED,
        ],
    )
    def get(self, request: Request) -> Response:
        organization = get_request_organization(request)
        plan = organization.plan
        return Response(
            {
                "plan": plan.code,
                "allowsAllQueryTypes": plan.allows_all_query_types,
                "allowedQueryTypes": [] if plan.allows_all_query_types else list(plan.allowed_query_types),
                "maxApiKeys": plan.max_api_keys,
                "apiKeysUsed": count_active_keys(organization=organization, now=timezone.now()),
                "requestsPerMinute": plan.requests_per_minute,
                "monthlyCredits": plan.monthly_credits,
                "subscriberDiscountPercent": money_str(plan.subscriber_discount_percent),
            }
        )
