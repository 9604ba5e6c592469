"""Codes of the system accounts, installed by a data migration."""

PURCHASE_STRIPE = "purchase:stripe"
PURCHASE_PAYPAL = "purchase:paypal"
PURCHASE_SANDBOX = "purchase:sandbox"
SUBSCRIPTION_GRANTS = "grant:subscription"
PROMOTION_GRANTS = "grant:promotion"
USAGE_REVENUE = "revenue:usage"
REFUNDS = "refunds"
ADMIN_ADJUSTMENTS = "adjustment:admin"
EXPIRY = "expiry"
DISPUTES = "disputes"

ALL = {
    PURCHASE_STRIPE: "Purchases via Stripe",
    PURCHASE_PAYPAL: "Purchases via PayPal",
    PURCHASE_SANDBOX: "Purchases via the demo sandbox",
    SUBSCRIPTION_GRANTS: "Subscription grants",
    PROMOTION_GRANTS: "Promotional grants",
    USAGE_REVENUE: "Usage revenue",
    REFUNDS: "Refunds",
    ADMIN_ADJUSTMENTS: "Admin adjustments",
    EXPIRY: "Expired credits",
    DISPUTES: "Disputes",
}

PURCHASE_BY_PROVIDER = {"stripe": PURCHASE_STRIPE, "paypal": PURCHASE_PAYPAL, "sandbox": PURCHASE_SANDBOX}
