from datetime import UTC
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import User
from accounts.selectors import get_membership
from apikeys.errors import ExpiryInPast
from apikeys.services import issue_api_key
from core.errors import NotFoundError, ValidationFailed
from core.management.base import JsonCommand


class Command(JsonCommand):
    help = "Issue an API key for the user's organization and print it (the only time the full key is shown)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("email")
        parser.add_argument("--name", default="API key")
        parser.add_argument("--scopes", help="comma-separated, default: query")
        parser.add_argument("--expires-at", dest="expires_at", help="ISO-8601; without a time zone, UTC")

    def run(self, **options: Any) -> dict[str, Any]:
        user = User.objects.filter(email__iexact=options["email"].strip(), is_service=False).first()
        if user is None:
            raise NotFoundError(f"No customer with the email {options['email']!r}.")
        membership = get_membership(user=user)
        if membership is None:
            raise NotFoundError(f"{user.email} does not belong to an organization.")
        expires_at = None
        if options["expires_at"]:
            try:
                expires_at = parse_datetime(options["expires_at"])
            except ValueError:
                expires_at = None
            if expires_at is None:
                raise ValidationFailed(f"--expires-at {options['expires_at']!r} is not an ISO-8601 date and time.")
            if timezone.is_naive(expires_at):
                expires_at = expires_at.replace(tzinfo=UTC)
            if expires_at <= timezone.now():
                raise ExpiryInPast("--expires-at is in the past.")
        api_key, raw_key = issue_api_key(
            organization=membership.organization,
            created_by=user,
            name=options["name"],
            scopes=options["scopes"],
            expires_at=expires_at,
        )
        return {"apiKeyId": api_key.pk, "key": raw_key}
