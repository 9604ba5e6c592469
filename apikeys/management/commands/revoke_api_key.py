from typing import Any

from apikeys.errors import ApiKeyNotFound
from apikeys.models import ApiKey
from apikeys.services import revoke_api_key
from core.errors import ValidationFailed
from core.management.base import JsonCommand


class Command(JsonCommand):
    help = "Revoke an API key by id (revoking a revoked key changes nothing)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("key_id")

    def run(self, **options: Any) -> dict[str, Any]:
        text = options["key_id"].strip()
        if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 2**63 - 1:
            raise ValidationFailed(f"KEY_ID must be a positive integer, not {options['key_id']!r}.")
        api_key = ApiKey.objects.filter(pk=int(text)).first()
        if api_key is None:
            raise ApiKeyNotFound(f"No API key with id {text}.")
        api_key = revoke_api_key(api_key=api_key)
        return {"apiKeyId": api_key.pk, "status": api_key.status}
