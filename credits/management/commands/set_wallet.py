from typing import Any

from core.management.base import JsonCommand, integer_argument
from credits.management.commands._lookup import organization_for_email
from credits.selectors import get_wallet
from credits.services import UNSET, set_wallet

whole_number = integer_argument(minimum=0)


def threshold(text: str) -> int | None:
    return None if text.strip().lower() == "none" else whole_number(text)


class Command(JsonCommand):
    help = "Show or change the overdraft limit and low-credit threshold of the organization of EMAIL."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--overdraft-limit", type=whole_number, default=None, help="Credits the wallet may owe.")
        parser.add_argument(
            "--low-credit-threshold", type=threshold, default=UNSET, help="Alert below N credits; 'none' turns it off."
        )

    def run(self, **options: Any) -> dict[str, Any]:
        organization = organization_for_email(options["email"])
        if options["overdraft_limit"] is None and options["low_credit_threshold"] is UNSET:
            wallet = get_wallet(organization=organization)
        else:
            wallet = set_wallet(
                organization=organization,
                overdraft_limit=options["overdraft_limit"],
                low_credit_threshold=options["low_credit_threshold"],
            )
        return {
            "orgId": organization.pk,
            "overdraftLimit": wallet.overdraft_limit,
            "lowCreditThreshold": wallet.low_credit_threshold,
        }
