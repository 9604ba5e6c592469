import pytest
from django.urls import reverse

from core.models import AuditEvent
from credits import services
from credits.models import Account, Entry, Transaction
from credits.selectors import get_wallet
from tests.credits.conftest import fund

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


def test_the_wallet_list_is_searchable_by_organization(admin_client, make_org):
    make_org(credits=5, name="Initech")
    make_org(name="Hooli")
    response = admin_client.get(reverse("admin:credits_account_changelist"), {"q": "Initech"})
    assert response.status_code == 200
    assert b"Wallet of Initech" in response.content
    assert b"Wallet of Hooli" not in response.content
    response = admin_client.get(reverse("admin:credits_account_changelist"), {"status__exact": "paused"})
    assert response.status_code == 200


def test_adding_credits_asks_for_an_amount_and_a_reason_then_posts_through_the_service(
    admin_client, make_org, superuser
):
    organization = make_org()
    wallet = get_wallet(organization=organization)
    url = reverse("admin:credits_account_changelist")
    response = admin_client.post(url, {"action": "add_credits", "_selected_action": [wallet.pk]})
    assert response.status_code == 200
    assert b'name="reason"' in response.content
    response = admin_client.post(
        url, {"action": "add_credits", "_selected_action": [wallet.pk], "apply": "1", "amount": "40", "reason": " "}
    )
    assert response.status_code == 200  # the form again, with its error
    assert get_wallet(organization=organization).balance == 0
    response = admin_client.post(
        url,
        {"action": "add_credits", "_selected_action": [wallet.pk], "apply": "1", "amount": "40", "reason": "goodwill"},
    )
    assert response.status_code == 302
    assert get_wallet(organization=organization).balance == 40
    assert AuditEvent.objects.get(event="credits.admin_add").actor == superuser


def test_adding_credits_refuses_a_reason_longer_than_the_ledger_keeps(admin_client, make_org):
    organization = make_org()
    wallet = get_wallet(organization=organization)
    data = {"action": "add_credits", "_selected_action": [wallet.pk], "apply": "1", "amount": "40", "reason": "r" * 501}
    response = admin_client.post(reverse("admin:credits_account_changelist"), data)
    assert response.status_code == 200  # the form again, with its error
    assert "at most 500 characters" in response.content.decode()
    assert get_wallet(organization=organization).balance == 0


def test_removing_credits_beyond_the_limit_shows_an_error_and_changes_nothing(admin_client, make_org):
    organization = make_org(credits=10)
    wallet = get_wallet(organization=organization)
    data = {"action": "remove_credits", "_selected_action": [wallet.pk], "apply": "1", "amount": "11", "reason": "x"}
    response = admin_client.post(reverse("admin:credits_account_changelist"), data, follow=True)
    assert "(balance 10): Not enough credits. Nothing was changed there." in response.content.decode()
    assert get_wallet(organization=organization).balance == 10
    data["amount"] = "4"
    admin_client.post(reverse("admin:credits_account_changelist"), data)
    assert get_wallet(organization=organization).balance == 6


def test_pause_and_resume_actions(admin_client, make_org):
    organization = make_org()
    wallet = get_wallet(organization=organization)
    url = reverse("admin:credits_account_changelist")
    admin_client.post(url, {"action": "pause", "_selected_action": [wallet.pk]})
    assert get_wallet(organization=organization).status == "paused"
    admin_client.post(url, {"action": "resume", "_selected_action": [wallet.pk]})
    assert get_wallet(organization=organization).status == "active"


@pytest.mark.parametrize("selected", ["abc", str(2**70), "1.5", ""])
def test_an_action_on_ids_that_are_not_ids_is_refused_with_a_message_and_changes_nothing(
    admin_client, make_org, selected
):
    """Found from outside: `_selected_action=abc` on the wallet list was a 500."""
    wallet = get_wallet(organization=(organization := make_org()))

    response = admin_client.post(
        reverse("admin:credits_account_changelist"),
        {"action": "pause", "_selected_action": [wallet.pk, selected]},
        follow=True,
    )

    assert response.status_code == 200
    assert "The selection was not valid: no items have been changed." in response.content.decode()
    assert get_wallet(organization=organization).status == "active"


def test_pausing_a_paused_wallet_says_so_and_changes_nothing(admin_client, make_org):
    paused, active = make_org(), make_org()
    services.pause_credits(organization=paused)
    version = get_wallet(organization=paused).version
    selected = [get_wallet(organization=paused).pk, get_wallet(organization=active).pk]

    response = admin_client.post(
        reverse("admin:credits_account_changelist"), {"action": "pause", "_selected_action": selected}, follow=True
    )

    page = response.content.decode()
    assert "Paused 1 wallet(s)." in page
    assert "1 wallet(s) already paused: left as they were." in page
    assert get_wallet(organization=paused).version == version
    assert get_wallet(organization=active).status == "paused"


def test_the_wallet_form_saves_limits_through_the_service_and_never_the_balance(admin_client, make_org):
    organization = make_org(credits=10)
    wallet = get_wallet(organization=organization)
    url = reverse("admin:credits_account_change", args=[wallet.pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    assert b'name="balance"' not in response.content
    admin_client.post(url, {"overdraft_limit": "25", "low_credit_threshold": "5", "balance": "999999"})
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.overdraft_limit, wallet.low_credit_threshold) == (10, 25, 5)
    assert AuditEvent.objects.filter(event="credits.wallet_settings").exists()
    response = admin_client.post(url, {"overdraft_limit": "-1", "low_credit_threshold": ""})
    assert response.status_code == 200
    assert get_wallet(organization=organization).overdraft_limit == 25


def test_transactions_and_entries_are_view_only(admin_client, make_org):
    organization = make_org()
    txn = fund(organization, 10)
    entry = Entry.objects.get(transaction=txn, account__kind="customer")
    response = admin_client.get(reverse("admin:credits_transaction_change", args=[txn.pk]))
    assert response.status_code == 200
    assert b"10" in response.content
    assert b'name="_save"' not in response.content
    assert admin_client.get(reverse("admin:credits_transaction_add")).status_code == 403
    assert admin_client.get(reverse("admin:credits_entry_add")).status_code == 403
    assert admin_client.post(reverse("admin:credits_entry_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403
    assert (
        admin_client.post(reverse("admin:credits_transaction_delete", args=[txn.pk]), {"post": "yes"}).status_code
        == 403
    )
    admin_client.post(reverse("admin:credits_entry_change", args=[entry.pk]), {"amount": "999"})
    entry.refresh_from_db()
    assert entry.amount == 10
    assert Transaction.objects.count() == 1
    assert (
        admin_client.get(
            reverse("admin:credits_entry_changelist"), {"account__id__exact": entry.account_id}
        ).status_code
        == 200
    )


def test_wallets_cannot_be_added_or_deleted_in_the_admin(admin_client, make_org):
    wallet = get_wallet(organization=make_org())
    assert admin_client.get(reverse("admin:credits_account_add")).status_code == 403
    assert (
        admin_client.post(reverse("admin:credits_account_delete", args=[wallet.pk]), {"post": "yes"}).status_code == 403
    )
    assert Account.objects.filter(pk=wallet.pk).exists()


def test_the_system_figures_page_shows_what_wallets_hold(admin_client, make_org):
    organization = make_org(credits=70)
    services.spend_credits(organization=organization, amount=20)
    response = admin_client.get(reverse("admin:credits_account_system_figures"))
    assert response.status_code == 200
    assert b'id="outstanding">50<' in response.content
    assert b"Usage revenue" in response.content


def test_the_system_figures_page_is_for_staff(client, owner):
    client.force_login(owner)
    response = client.get(reverse("admin:credits_account_system_figures"))
    assert response.status_code == 302


def test_transactions_are_listed_newest_first(admin_client, make_org):
    organization = make_org()
    for amount in range(1, 6):
        services.grant_credits(organization=organization, amount=amount, reason="top-up")

    response = admin_client.get(reverse("admin:credits_transaction_changelist"))

    listed = [txn.created_at for txn in response.context["cl"].result_list]
    assert len(listed) >= 5
    assert listed == sorted(listed, reverse=True)
