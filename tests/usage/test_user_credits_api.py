"""GET /api/users/{userId}/credits: service token, the user's own session, staff; else 404."""

import pytest
from rest_framework.test import APIClient

from apikeys.services import issue_api_key
from credits.services import pause_credits, set_wallet


def test_a_service_token_reads_any_users_credits(service_client, owner, funded):
    set_wallet(organization=funded, low_credit_threshold=10)

    body = service_client.get(f"/api/users/{owner.pk}/credits").json()

    assert body["userId"] == owner.pk and body["orgId"] == funded.pk
    assert body["credits"] == 100 and body["status"] == "active" and body["lowCreditThreshold"] == 10
    assert body["updatedAt"].endswith("Z")


def test_the_status_shows_a_paused_wallet(service_client, owner, funded):
    pause_credits(organization=funded)

    assert service_client.get(f"/api/users/{owner.pk}/credits").json()["status"] == "paused"


def test_a_user_reads_their_own_credits_with_their_session(owner, funded):
    client = APIClient()
    client.force_login(owner)

    assert client.get(f"/api/users/{owner.pk}/credits").json()["credits"] == 100


def test_staff_read_anyones_credits(staff, owner, funded):
    client = APIClient()
    client.force_login(staff)

    assert client.get(f"/api/users/{owner.pk}/credits").status_code == 200


def test_someone_else_gets_unknown_user(member, owner, funded):
    client = APIClient()
    client.force_login(member)

    response = client.get(f"/api/users/{owner.pk}/credits")

    assert response.status_code == 404 and response.json()["error"] == "unknown_user"


def test_a_customer_api_key_is_not_a_service_token_even_its_creators(owner, organization, funded):
    _, raw_key = issue_api_key(organization=organization, created_by=owner, name="k")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    response = client.get(f"/api/users/{owner.pk}/credits")

    assert response.status_code == 403 and response.json()["error"] == "permission_denied"


def test_unknown_users_and_users_without_an_organization_are_404(service_client, staff):
    assert service_client.get("/api/users/987654321/credits").json()["error"] == "unknown_user"
    assert service_client.get(f"/api/users/{staff.pk}/credits").json()["error"] == "unknown_user"


def test_leading_zeros_in_the_path_name_the_same_user(service_client, owner, funded):
    padded = str(owner.pk).zfill(25)

    assert service_client.get(f"/api/users/{padded}/credits").json()["userId"] == owner.pk


@pytest.mark.parametrize("user_id", ["abc", "0", "-1", "9223372036854775808", "1.5", "%C2%B2"])
def test_an_id_that_is_not_an_integer_from_1_to_2_63_is_a_400(service_client, user_id):
    response = service_client.get(f"/api/users/{user_id}/credits")

    assert response.status_code == 400
    assert response.json()["error"] == "validation_error" and "userId" in response.json()["fields"]


def test_no_credentials_is_a_401(owner):
    assert APIClient().get(f"/api/users/{owner.pk}/credits").status_code == 401
