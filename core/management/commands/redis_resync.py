from typing import Any

import redis
from django.core.management.base import CommandError

from core.management.base import JsonCommand
from core.publisher import resync


class Command(JsonCommand):
    help = (
        "Write every API key and organization hash to Redis in batches (never over a higher version), "
        "delete key hashes of keys that no longer exist, and print how many hashes were written."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="replace hashes even when Redis holds a higher version (after restoring the database)",
        )

    def run(self, **options: Any) -> dict[str, Any]:
        try:
            result = resync(force=options["force"])
        except redis.ResponseError as exc:
            raise CommandError(
                f"Redis refused a write ({exc}); a key of ours may hold another type: run again with --force."
            ) from exc
        except redis.RedisError as exc:
            raise CommandError(
                f"Redis cannot be reached ({exc}): the resync did not finish. The database is unchanged; run it again "
                "once Redis answers (the periodic tasks also bring Redis in line)."
            ) from exc
        return {"keys": result["keys"], "orgs": result["orgs"]}
