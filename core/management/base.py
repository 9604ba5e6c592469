"""Operator commands print one JSON object as their last stdout line (the contract, section 4)."""

import argparse
import json
import re
from collections.abc import Callable
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


_DIGITS = re.compile(r"[0-9]+")
# A bigint primary key's largest value; every amount and limit the services take is far below it.
MAX_INTEGER_ARGUMENT = 2**63 - 1


def integer_argument(*, minimum: int = 0, maximum: int = MAX_INTEGER_ARGUMENT) -> Callable[[str], int]:
    """An argparse `type` for the commands' integer arguments: ASCII digits 0-9 and nothing else.

    Python's int() also takes full-width or other Unicode digits, underscores, a sign and
    surrounding spaces (a full-width "12", "1_000", "+8", " 7 "); an operator's typo should fail, not be
    read as some number.
    """

    def parse(text: str) -> int:
        if re.fullmatch(r"-[0-9]+", text):
            raise argparse.ArgumentTypeError(f"{text} is negative: give a whole number from {minimum}.")
        if not _DIGITS.fullmatch(text):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a whole number: use only the digits 0-9 (no sign, spaces or separators)."
            )
        # Checked on the length first: int() refuses more than 4,300 digits with its own error.
        value = int(text) if len(text.lstrip("0")) <= len(str(maximum)) else maximum + 1
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(
                f"{text} is out of range: give a whole number from {minimum} to {maximum}."
            )
        return value

    return parse
