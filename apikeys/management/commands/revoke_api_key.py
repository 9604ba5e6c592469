from typing import Any

from apikeys.errors import ApiKeyNotFound
from apikeys.models import ApiKey
from apikeys.services import revoke_api_key
from core.management.base import JsonCommand, integer_argument


class Command(JsonCommand):
    help = "Revoke an API key by id (revoking a revoked key changes nothing)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("key_id", type=integer_argument(minimum=1), help="The key's id, a whole number.")

    def run(self, **options: Any) -> dict[str, Any]:
        api_key = ApiKey.objects.filter(pk=options["key_id"]).first()
        if api_key is None:
            raise ApiKeyNotFound(f"No API key with id {options['key_id']}.")
        api_key = revoke_api_key(api_key=api_key)
        return {"apiKeyId": api_key.pk, "status": api_key.status}
