import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction

from core.models import AuditEvent
from credits import services
from credits.models import Account, Entry
from credits.selectors import get_wallet
from tests.credits.conftest import fund

pytestmark = pytest.mark.django_db


def run(capsys, *args) -> dict:
    call_command(*args)
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_grant_credits_prints_the_org_balance_and_transaction(capsys, owner, organization):
    result = run(capsys, "grant_credits", "OWNER@acme.test", "250", "--reason", "welcome")
    wallet = get_wallet(organization=organization)
    assert result == {"orgId": organization.pk, "balance": 250, "transactionId": result["transactionId"]}
    assert wallet.balance == 250
    assert Entry.objects.get(account=wallet).transaction_id.hex == result["transactionId"].replace("-", "")
    assert AuditEvent.objects.filter(event="credits.admin_add", organization=organization).exists()


def test_grant_credits_reaches_a_paused_wallet(capsys, owner, organization):
    services.pause_credits(organization=organization)
    assert run(capsys, "grant_credits", "owner@acme.test", "5")["balance"] == 5


@pytest.mark.parametrize("amount", ["0", "-3", "1.5", "ten"])
def test_grant_credits_refuses_an_amount_below_one_or_not_whole(owner, amount):
    with pytest.raises(CommandError):
        call_command("grant_credits", "owner@acme.test", amount)
    assert not Entry.objects.exists()


def test_grant_credits_refuses_a_reason_too_long_to_keep_whole(owner, organization):
    with pytest.raises(CommandError, match="The reason is 10,000 characters long: at most 500 are allowed"):
        call_command("grant_credits", "owner@acme.test", "5", "--reason", "r" * 10_000)
    assert not Entry.objects.exists()
    assert get_wallet(organization=organization).balance == 0
    assert not AuditEvent.objects.filter(event="credits.admin_add").exists()


@pytest.mark.parametrize("command", [["grant_credits", "5"], ["pause_credits"], ["resume_credits"], ["set_wallet"]])
def test_commands_refuse_an_unknown_email(db, command):
    with pytest.raises(CommandError, match="No customer with the email"):
        call_command(command[0], "nobody@nowhere.test", *command[1:])


def test_pause_and_resume_print_the_status(capsys, owner, organization):
    assert run(capsys, "pause_credits", "owner@acme.test") == {"orgId": organization.pk, "status": "paused"}
    assert run(capsys, "pause_credits", "owner@acme.test") == {"orgId": organization.pk, "status": "paused"}
    assert get_wallet(organization=organization).status == "paused"
    assert run(capsys, "resume_credits", "owner@acme.test") == {"orgId": organization.pk, "status": "active"}


def test_set_wallet_without_options_prints_the_current_values(capsys, owner, organization):
    version = get_wallet(organization=organization).version
    result = run(capsys, "set_wallet", "owner@acme.test")
    assert result == {"orgId": organization.pk, "overdraftLimit": 0, "lowCreditThreshold": None}
    assert get_wallet(organization=organization).version == version


def test_set_wallet_changes_values_and_bumps_the_version(capsys, owner, organization):
    version = get_wallet(organization=organization).version
    result = run(capsys, "set_wallet", "owner@acme.test", "--overdraft-limit", "100", "--low-credit-threshold", "20")
    assert result == {"orgId": organization.pk, "overdraftLimit": 100, "lowCreditThreshold": 20}
    assert get_wallet(organization=organization).version == version + 1
    result = run(capsys, "set_wallet", "owner@acme.test", "--low-credit-threshold", "none")
    assert result == {"orgId": organization.pk, "overdraftLimit": 100, "lowCreditThreshold": None}
    assert get_wallet(organization=organization).version == version + 2


@pytest.mark.parametrize("option", ["--overdraft-limit", "--low-credit-threshold"])
def test_set_wallet_refuses_a_negative_number(owner, organization, option):
    with pytest.raises(CommandError, match="negative"):
        call_command("set_wallet", "owner@acme.test", option, "-1")
    wallet = get_wallet(organization=organization)
    assert (wallet.overdraft_limit, wallet.low_credit_threshold) == (0, None)


def test_set_wallet_refuses_an_overdraft_below_the_debt(owner, organization):
    services.set_wallet(organization=organization, overdraft_limit=10)
    services.spend_credits(organization=organization, amount=8)
    with pytest.raises(CommandError, match="current debt"):
        call_command("set_wallet", "owner@acme.test", "--overdraft-limit", "5")


def test_ledger_verify_reports_a_clean_ledger(capsys, owner, organization):
    fund(organization, 10)
    services.spend_credits(organization=organization, amount=3)
    result = run(capsys, "ledger_verify")
    assert result == {"ok": True, "accounts": Account.objects.count(), "transactions": 2}


def test_ledger_verify_exits_one_listing_every_broken_invariant(capsys, owner, organization):
    txn = fund(organization, 10)
    wallet = get_wallet(organization=organization)
    # Corruption that only a bypass of the services could cause (on PostgreSQL the
    # zero-sum trigger would refuse it at commit, which this test never reaches).
    Entry.objects.create(transaction=txn, account=wallet, amount=5, balance_after=99)
    Account.objects.filter(pk=wallet.pk).update(balance=12)
    with pytest.raises(CommandError) as excinfo:
        call_command("ledger_verify")
    assert excinfo.value.returncode == 1
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["ok"] is False
    found = {violation["invariant"] for violation in result["violations"]}
    assert found == {"transaction_sums_to_zero", "balance_equals_entries", "balance_after_chains"}
    chain = [v for v in result["violations"] if v["invariant"] == "balance_after_chains"]
    assert chain == [
        {
            "invariant": "balance_after_chains",
            "accountId": wallet.pk,
            "entryId": chain[0]["entryId"],
            "balanceAfter": 99,
            "expected": 15,
        }
    ]
    # Balance the transaction again: when the test ends Django checks deferred
    # constraints, our zero-sum trigger among them on PostgreSQL.
    source = Entry.objects.get(transaction=txn, amount=-10).account
    Entry.objects.create(transaction=txn, account=source, amount=-5)


def test_a_wallet_below_its_overdraft_limit_is_refused_by_the_database_itself(owner, organization):
    services.set_wallet(organization=organization, overdraft_limit=50)
    services.spend_credits(organization=organization, amount=40)
    # Lowering the limit behind the service's back: the CHECK constraint stops it, so
    # ledger_verify's overdraft check is a second line that can only fire without it.
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(organization=organization).update(overdraft_limit=20)
    assert get_wallet(organization=organization).overdraft_limit == 50
