"""Operator commands print one JSON object as their last stdout line (the contract, section 4)."""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError


class JsonCommand(BaseCommand):
    """Subclasses implement `run(**options) -> dict`; domain errors become a clean non-zero exit."""

    def run(self, **options: Any) -> dict[str, Any]:
        raise NotImplementedError

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = self.run(**options)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(json.dumps(result, default=str))
