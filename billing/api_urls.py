from django.urls import path

from billing import api

urlpatterns = [
    path("credits/rate", api.CreditRateApi.as_view(), name="api-credits-rate"),
    path("credits/packages", api.CreditPackagesApi.as_view(), name="api-credits-packages"),
    path("credits/balance", api.CreditBalanceApi.as_view(), name="api-credits-balance"),
    path("credits/summary", api.CreditSummaryApi.as_view(), name="api-credits-summary"),
    path("credits/transactions", api.CreditTransactionsApi.as_view(), name="api-credits-transactions"),
    path("credits/purchase/validate", api.PurchaseValidateApi.as_view(), name="api-credits-purchase-validate"),
    path("credits/purchase", api.PurchaseApi.as_view(), name="api-credits-purchase"),
    path("subscription", api.SubscriptionApi.as_view(), name="api-subscription"),
    path("subscription/change", api.SubscriptionChangeApi.as_view(), name="api-subscription-change"),
    path("subscription/cancel", api.SubscriptionCancelApi.as_view(), name="api-subscription-cancel"),
    path("subscription/quotas", api.SubscriptionQuotasApi.as_view(), name="api-subscription-quotas"),
]
