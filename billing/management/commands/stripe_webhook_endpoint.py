from typing import Any

from django.conf import settings
from django.urls import reverse

from billing.errors import ProviderUnavailable
from billing.services import install_stripe_webhook_endpoint
from core.management.base import JsonCommand


class Command(JsonCommand):
    help = (
        "Store the Stripe webhook endpoint's signing secret (STRIPE_WEBHOOK_SECRET or --secret) so dj-stripe "
        "verifies deliveries; prints the path to give Stripe. Running it again updates the secret."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--secret", help="the endpoint's whsec_... secret (default: STRIPE_WEBHOOK_SECRET)")
        parser.add_argument("--id", dest="endpoint_id", default="we_creditdesk", help="Stripe's endpoint id (we_...)")

    def run(self, **options: Any) -> dict[str, Any]:
        secret = options["secret"] or settings.DJSTRIPE_WEBHOOK_SECRET
        if not secret:
            raise ProviderUnavailable("Give --secret or set STRIPE_WEBHOOK_SECRET.")
        endpoint = install_stripe_webhook_endpoint(secret=secret, endpoint_id=options["endpoint_id"])
        path = reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": endpoint.djstripe_uuid})
        return {"endpointId": endpoint.id, "url": f"{settings.SITE_URL.rstrip('/')}{path}"}
