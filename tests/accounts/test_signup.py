import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import Membership, Organization, User
from accounts.services import create_personal_organization
from credits.models import Account

pytestmark = pytest.mark.django_db


def test_sign_up_creates_a_user_with_a_personal_organization_they_administer(client):
    response = client.post(
        "/accounts/signup/",
        {"email": "new@example.test", "password1": "a-long-unusual-pass-42", "password2": "a-long-unusual-pass-42"},
    )
    assert response.status_code == 302
    user = User.objects.get(email="new@example.test")
    membership = Membership.objects.get(user=user)
    assert membership.role == Membership.Role.CLIENT_ADMIN
    assert membership.organization.plan_id == "free"
    wallet = Account.objects.get(organization=membership.organization)
    assert (wallet.balance, wallet.overdraft_limit, wallet.low_credit_threshold) == (0, 0, None)


def test_log_in_and_log_out_with_email_and_password(client, owner):
    response = client.post("/accounts/login/", {"login": "owner@acme.test", "password": "correct-horse-battery-9"})
    assert response.status_code == 302
    assert client.get("/dashboard/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/dashboard/").status_code == 302


def test_dashboard_requires_log_in(client):
    response = client.get("/dashboard/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_create_customer_prints_ids_and_joins_an_existing_org_as_member(capsys, owner):
    call_command("create_customer", "second@acme.test", "--org", "acme")
    out = capsys.readouterr().out.strip().splitlines()[-1]
    import json

    result = json.loads(out)
    user = User.objects.get(pk=result["userId"])
    assert result["orgId"] == owner.membership.organization_id
    assert user.membership.role == "member"


def test_create_customer_reads_an_org_slug_in_any_case_as_lower_case(capsys, owner):
    call_command("create_customer", "third@acme.test", "--org", "ACME")
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    assert result["orgId"] == owner.membership.organization_id


@pytest.mark.parametrize("slug", ["Bad Slug!", "acme/evil", "x" * 65, " ", "ünïcode"])
def test_create_customer_refuses_an_org_slug_that_is_not_a_slug(db, slug):
    with pytest.raises(CommandError, match="organization slug"):
        call_command("create_customer", "slug@example.test", "--org", slug)
    assert not User.objects.filter(email="slug@example.test").exists()


def test_create_customer_refuses_an_email_taken_in_another_case(owner):
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_customer", "OWNER@ACME.TEST")


def test_create_customer_refuses_an_invalid_email(db):
    with pytest.raises(CommandError, match="valid email"):
        call_command("create_customer", "not-an-email")


@pytest.mark.parametrize(
    "email",
    ["l" * 65 + "@example.test", "m" * 190 + "@example.test", "a@" + "d" * 60 + ".d" * 100 + ".test"],
)
def test_create_customer_refuses_an_email_too_long_for_one(db, email):
    organizations = Organization.objects.count()

    with pytest.raises(CommandError, match="too long for an email address"):
        call_command("create_customer", email)

    assert not User.objects.filter(email__iexact=email).exists()
    assert Organization.objects.count() == organizations


def test_create_customer_takes_the_longest_local_part_email_allows(capsys, db):
    call_command("create_customer", "l" * 64 + "@example.test")

    membership = User.objects.get(email="l" * 64 + "@example.test").membership
    assert membership.organization.name == "l" * 64 + "'s organization"


def test_a_personal_organization_is_named_after_at_most_64_characters_of_the_address(db):
    user = User.objects.create_user(email="p" * 150 + "@example.test")

    membership = create_personal_organization(user=user)

    assert membership.organization.name == "p" * 64 + "'s organization"
