"""The operator commands read every integer argument the same strict way (contract section 4)."""

import argparse

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apikeys.models import ApiKey
from apikeys.services import issue_api_key
from core.management.base import integer_argument
from credits.models import Entry
from credits.selectors import get_wallet

# Python's int() reads all of these; an operator's command must not.
NOT_PLAIN_DIGITS = ["\uff11\uff12", "\u0663", "1_000", "+8", " 7 ", "7\n", "1e3", "0x10", "12.0", "", "seven"]


@pytest.mark.parametrize("text", NOT_PLAIN_DIGITS)
def test_an_integer_argument_is_ascii_digits_only(text):
    with pytest.raises(argparse.ArgumentTypeError, match="only the digits 0-9"):
        integer_argument()(text)


def test_an_integer_argument_takes_plain_digits_within_its_range():
    assert integer_argument()("0") == 0
    assert integer_argument(minimum=1)("007") == 7
    assert integer_argument()(str(2**63 - 1)) == 2**63 - 1
    for text in ["0", str(2**63), "9" * 5000]:
        with pytest.raises(argparse.ArgumentTypeError, match="out of range"):
            integer_argument(minimum=1)(text)
    with pytest.raises(argparse.ArgumentTypeError, match="negative"):
        integer_argument()("-3")


@pytest.mark.parametrize("text", NOT_PLAIN_DIGITS)
def test_grant_credits_refuses_an_amount_not_written_in_plain_digits(owner, organization, text):
    with pytest.raises(CommandError, match=r"argument amount: .* only the digits 0-9"):
        call_command("grant_credits", "owner@acme.test", text)
    assert not Entry.objects.exists()


@pytest.mark.parametrize("text", NOT_PLAIN_DIGITS)
@pytest.mark.parametrize("option", ["--overdraft-limit", "--low-credit-threshold"])
def test_set_wallet_refuses_a_number_not_written_in_plain_digits(owner, organization, option, text):
    version = get_wallet(organization=organization).version
    with pytest.raises(CommandError, match="only the digits 0-9"):
        call_command("set_wallet", "owner@acme.test", option, text)
    wallet = get_wallet(organization=organization)
    assert (wallet.overdraft_limit, wallet.low_credit_threshold, wallet.version) == (0, None, version)


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) - ord("0") + 0xFF10) for c in text)


@pytest.mark.parametrize(
    "spell",
    [_full_width, lambda pk: f" {pk} ", lambda pk: f"+{pk}", lambda pk: f"{pk}\n", lambda pk: f"{pk}_0"],
    ids=["full-width", "spaces", "plus", "newline", "underscore"],
)
def test_revoke_api_key_refuses_a_key_id_not_written_in_plain_digits(owner, organization, spell):
    api_key, _ = issue_api_key(organization=organization, created_by=owner, name="production")
    with pytest.raises(CommandError, match=r"argument key_id: .* only the digits 0-9"):
        call_command("revoke_api_key", spell(str(api_key.pk)))
    api_key.refresh_from_db()
    assert api_key.status == ApiKey.Status.ACTIVE
