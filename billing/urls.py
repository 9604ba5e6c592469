from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("buy/", views.buy, name="buy"),
    path("buy/pay", views.pay, name="pay"),
    path("checkout/return", views.checkout_return, name="checkout_return"),
    path("paypal/return", views.paypal_return, name="paypal_return"),
    path("paypal/webhook", views.paypal_webhook, name="paypal_webhook"),
    path("plan/", views.plan, name="plan"),
    path("plan/change", views.plan_change, name="plan_change"),
    path("plan/cancel", views.plan_cancel, name="plan_cancel"),
    path("plan/portal", views.stripe_portal, name="stripe_portal"),
    path("purchases/", views.history, name="history"),
    path("purchases/<int:purchase_id>/", views.receipt, name="receipt"),
    path("purchases/<int:purchase_id>/dispute", views.dispute, name="dispute"),
]
