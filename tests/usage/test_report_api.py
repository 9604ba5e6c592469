"""POST /api/usage/report: every row of the contract's outcome table, and the order of outcomes."""

import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from apikeys.services import expire_api_keys, issue_api_key, revoke_api_key
from billing.services import change_plan
from credits.models import Account, Transaction
from credits.selectors import verify_ledger
from credits.services import grant_credits, pause_credits, set_wallet
from usage.models import UsageEvent
from usage.services import UsageReport, record_usage


def balance(organization) -> int:
    return Account.objects.get(organization=organization).balance


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False
    assert body["error"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    return body


# --- Rows of the outcome table -------------------------------------------------------------


def test_a_report_is_recorded_charged_and_answered_with_201(post_report, report_body, organization, owner, api_key):
    response = post_report(report_body(metadata={"rows": 1000}, eventId="evt-1"))

    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True and body["duplicate"] is False
    assert body["remainingCredits"] == 95 == balance(organization)
    assert body["usageDateTime"].endswith("Z")
    event = UsageEvent.objects.get(pk=body["usageId"])
    assert str(event.transaction_id) == body["transactionId"]
    assert (event.organization_id, event.user_id, event.api_key_id) == (organization.pk, owner.pk, api_key.pk)
    assert (event.credits, event.query_type, event.metadata, event.idempotency_key) == (
        5,
        "standard",
        {"rows": 1000},
        "evt-1",
    )
    assert event.transaction.kind == Transaction.Kind.USAGE
    amounts = sorted(event.transaction.entries.values_list("amount", "balance_after"))
    assert amounts == [(-5, 95), (5, None)]
    assert verify_ledger().ok


def test_a_replay_answers_200_with_exactly_the_first_answer_and_charges_nothing(post_report, report_body, organization):
    first = post_report(report_body(eventId="evt-1")).json()
    post_report(report_body(eventId="evt-2", creditsUsed=10))

    again = post_report(report_body(eventId="evt-1"))

    assert again.status_code == 200
    assert again.json() == {**first, "duplicate": True}
    assert balance(organization) == 85
    assert UsageEvent.objects.count() == 2


def test_the_idempotency_key_header_is_the_same_key_space_as_event_id(post_report, report_body):
    first = post_report(report_body(), HTTP_IDEMPOTENCY_KEY="hdr-1").json()

    again = post_report(report_body(eventId="hdr-1"))

    assert again.status_code == 200 and again.json()["usageId"] == first["usageId"]


def test_event_id_and_header_that_differ_are_a_400(post_report, report_body, organization):
    response = post_report(report_body(eventId="a-1"), HTTP_IDEMPOTENCY_KEY="b-1")

    body = assert_error(response, 400, "validation_error")
    assert "eventId" in body["fields"]
    assert balance(organization) == 100


def test_the_same_key_and_payload_compare_metadata_as_json_and_occurred_at_as_an_instant(post_report, report_body):
    when = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    first = post_report(
        report_body(eventId="k", metadata={"a": 1, "b": [1, 2]}, occurredAt=when.isoformat().replace("+00:00", "Z"))
    )
    in_paris = when.astimezone(timezone.get_fixed_timezone(120)).isoformat()
    again = post_report(report_body(eventId="k", metadata={"b": [1, 2], "a": 1}, occurredAt=in_paris))

    assert first.status_code == 201
    assert again.status_code == 200


def test_numbers_in_metadata_compare_as_json_values(post_report, report_body):
    assert post_report(report_body(eventId="j", metadata={"rows": 1000, "n": [1, {"x": 0}]})).status_code == 201
    again = report_body(eventId="j", metadata={"rows": 1000.0, "n": [1e0, {"x": -0.0}]})

    assert post_report(again).status_code == 200
    assert post_report(report_body(eventId="j", metadata={"rows": 1000.5, "n": [1, {"x": 0}]})).status_code == 409


def test_absent_and_null_optional_fields_are_the_same_payload(post_report, report_body):
    assert post_report(report_body(eventId="n-1")).status_code == 201
    assert post_report(report_body(eventId="n-1", metadata=None, occurredAt=None)).status_code == 200


def test_the_same_key_with_another_payload_is_a_409_conflict(post_report, report_body, organization):
    post_report(report_body(eventId="evt-1"))

    response = post_report(report_body(eventId="evt-1", creditsUsed=6))

    assert_error(response, 409, "idempotency_conflict")
    assert balance(organization) == 95


def test_keys_are_per_organization(post_report, report_body, outsider):
    outsider_org = outsider.membership.organization
    grant_credits(organization=outsider_org, amount=50, reason="test")
    outsider_key, _ = issue_api_key(organization=outsider_org, created_by=outsider, name="Other")
    post_report(report_body(eventId="shared-id"))

    response = post_report(report_body(eventId="shared-id", userId=outsider.pk, apiKeyId=outsider_key.pk))

    assert response.status_code == 201
    assert balance(outsider_org) == 45


def test_not_enough_credits_is_a_402_with_the_balance_and_records_nothing(post_report, report_body, organization):
    response = post_report(report_body(creditsUsed=101, eventId="big"))

    body = assert_error(response, 402, "insufficient_credits")
    assert body["remainingCredits"] == 100
    assert balance(organization) == 100
    assert not UsageEvent.objects.exists()


def test_an_overdraft_limit_lets_the_wallet_go_below_zero_down_to_it(post_report, report_body, organization):
    set_wallet(organization=organization, overdraft_limit=50)

    assert post_report(report_body(creditsUsed=150)).json()["remainingCredits"] == -50
    assert_error(post_report(report_body(creditsUsed=1)), 402, "insufficient_credits")
    assert verify_ledger().ok


def test_a_rejection_is_not_remembered_so_a_retry_after_a_top_up_succeeds(post_report, report_body, organization):
    assert_error(post_report(report_body(creditsUsed=150, eventId="retry-me")), 402, "insufficient_credits")
    grant_credits(organization=organization, amount=100, reason="top-up")

    response = post_report(report_body(creditsUsed=150, eventId="retry-me"))

    assert response.status_code == 201 and response.json()["remainingCredits"] == 50


def test_a_paused_wallet_is_a_403_credits_paused(post_report, report_body, organization):
    pause_credits(organization=organization)

    assert_error(post_report(report_body()), 403, "credits_paused")
    assert balance(organization) == 100


def test_a_revoked_key_is_a_403(post_report, report_body, api_key):
    revoke_api_key(api_key=api_key)

    assert_error(post_report(report_body()), 403, "api_key_revoked")


def test_an_expired_key_is_a_403(post_report, report_body, organization, owner):
    key, _ = issue_api_key(
        organization=organization, created_by=owner, name="Short", expires_at=timezone.now() + timedelta(hours=1)
    )
    expire_api_keys(now=timezone.now() + timedelta(hours=2))

    assert_error(post_report(report_body(apiKeyId=key.pk)), 403, "api_key_expired")


def test_a_key_past_its_expiry_is_expired_before_the_sweep_marks_it(report_body, api_key, organization, owner):
    key, _ = issue_api_key(
        organization=organization, created_by=owner, name="Short", expires_at=timezone.now() + timedelta(hours=1)
    )
    report = UsageReport(user_id=owner.pk, api_key_id=key.pk, credits=1, query_type="standard")

    from usage.errors import ApiKeyExpired

    with pytest.raises(ApiKeyExpired):
        record_usage(report=report, now=timezone.now() + timedelta(hours=2))


def test_a_query_type_the_plan_does_not_allow_is_a_403(post_report, report_body, organization):
    assert_error(post_report(report_body(queryType="premium")), 403, "query_type_not_allowed")

    change_plan(organization=organization, plan_code="professional")

    assert post_report(report_body(queryType="premium")).status_code == 201


def test_an_unknown_user_is_a_404(post_report, report_body):
    assert_error(post_report(report_body(userId=987654321)), 404, "unknown_user")


def test_a_user_without_an_organization_is_an_unknown_user(post_report, report_body, staff):
    assert_error(post_report(report_body(userId=staff.pk)), 404, "unknown_user")


def test_an_unknown_key_is_a_404(post_report, report_body):
    assert_error(post_report(report_body(apiKeyId=987654321)), 404, "unknown_api_key")


def test_another_organizations_key_is_an_unknown_key(post_report, report_body, outsider):
    key, _ = issue_api_key(organization=outsider.membership.organization, created_by=outsider, name="Theirs")

    assert_error(post_report(report_body(apiKeyId=key.pk)), 404, "unknown_api_key")


def test_bad_fields_are_a_400_with_messages_per_field(post_report, report_body):
    body = assert_error(post_report(report_body(creditsUsed="5", queryType=...)), 400, "validation_error")

    assert set(body["fields"]) == {"creditsUsed", "queryType"}


# --- Credentials ------------------------------------------------------------------------------


def test_no_credentials_is_a_401(report_body):
    assert_error(APIClient().post("/api/usage/report", report_body(), format="json"), 401, "not_authenticated")


def test_a_bad_token_is_a_401(report_body):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    assert_error(client.post("/api/usage/report", report_body(), format="json"), 401, "not_authenticated")


def test_a_customer_session_is_a_403(report_body, owner):
    client = APIClient()
    client.force_login(owner)

    assert_error(client.post("/api/usage/report", report_body(), format="json"), 403, "permission_denied")


def test_a_customer_api_key_is_a_403(report_body, organization, owner):
    _, raw_key = issue_api_key(organization=organization, created_by=owner, name="Customer")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    assert_error(client.post("/api/usage/report", report_body(), format="json"), 403, "permission_denied")


# --- The order of outcomes -------------------------------------------------------------------


def test_credentials_come_before_validation(report_body):
    response = APIClient().post("/api/usage/report", {"creditsUsed": "x"}, format="json")

    assert_error(response, 401, "not_authenticated")


def test_validation_comes_before_an_unknown_user(post_report, report_body):
    assert_error(post_report(report_body(userId=987654321, creditsUsed=0)), 400, "validation_error")


def test_an_unknown_user_comes_before_a_conflict(post_report, report_body):
    post_report(report_body(eventId="evt-1"))

    assert_error(post_report(report_body(eventId="evt-1", userId=987654321)), 404, "unknown_user")


def test_a_conflict_comes_before_an_unknown_key(post_report, report_body):
    post_report(report_body(eventId="evt-1"))

    assert_error(post_report(report_body(eventId="evt-1", apiKeyId=987654321)), 409, "idempotency_conflict")


def test_a_replay_comes_before_a_revoked_key_and_a_paused_wallet(post_report, report_body, api_key, organization):
    first = post_report(report_body(eventId="evt-1")).json()
    revoke_api_key(api_key=api_key)
    pause_credits(organization=organization)

    again = post_report(report_body(eventId="evt-1"))

    assert again.status_code == 200 and again.json()["transactionId"] == first["transactionId"]


def test_a_conflict_comes_before_a_revoked_key(post_report, report_body, api_key):
    post_report(report_body(eventId="evt-1"))
    revoke_api_key(api_key=api_key)

    assert_error(post_report(report_body(eventId="evt-1", creditsUsed=7)), 409, "idempotency_conflict")


def test_an_unknown_key_comes_before_a_paused_wallet(post_report, report_body, organization):
    pause_credits(organization=organization)

    assert_error(post_report(report_body(apiKeyId=987654321)), 404, "unknown_api_key")


def test_a_revoked_key_comes_before_an_expired_one(report_body, organization, owner):
    key, _ = issue_api_key(
        organization=organization, created_by=owner, name="Both", expires_at=timezone.now() + timedelta(hours=1)
    )
    revoke_api_key(api_key=key)
    report = UsageReport(user_id=owner.pk, api_key_id=key.pk, credits=1, query_type="standard")

    from usage.errors import ApiKeyRevoked

    with pytest.raises(ApiKeyRevoked):
        record_usage(report=report, now=timezone.now() + timedelta(hours=2))


def test_an_expired_key_comes_before_a_paused_wallet(post_report, report_body, organization, owner):
    key, _ = issue_api_key(
        organization=organization, created_by=owner, name="Short", expires_at=timezone.now() + timedelta(hours=1)
    )
    expire_api_keys(now=timezone.now() + timedelta(hours=2))
    pause_credits(organization=organization)

    assert_error(post_report(report_body(apiKeyId=key.pk)), 403, "api_key_expired")


def test_a_revoked_key_comes_before_a_paused_wallet(post_report, report_body, api_key, organization):
    revoke_api_key(api_key=api_key)
    pause_credits(organization=organization)

    assert_error(post_report(report_body()), 403, "api_key_revoked")


def test_a_paused_wallet_comes_before_the_query_type_and_the_balance(post_report, report_body, organization):
    pause_credits(organization=organization)

    assert_error(post_report(report_body(queryType="premium", creditsUsed=1000)), 403, "credits_paused")


def test_the_query_type_comes_before_the_balance(post_report, report_body):
    assert_error(post_report(report_body(queryType="premium", creditsUsed=1000)), 403, "query_type_not_allowed")


# --- The write path ----------------------------------------------------------------------------


def test_the_write_path_is_a_fixed_small_number_of_queries(
    post_report, report_body, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    post_report(report_body(eventId="warm-up"))  # fills the per-process token cache

    # PostgreSQL: one statement, the context read and the posting (plus the savepoint the
    # test's own transaction needs); elsewhere the context read and the portable ORM posting.
    limit = 3 if settings.IS_POSTGRES else 12
    with django_assert_max_num_queries(limit) as captured:
        response = post_report(report_body(eventId=f"evt-{uuid.uuid4()}", metadata={"k": "v"}))
    assert response.status_code == 201
    if settings.IS_POSTGRES:
        statements = [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]
        assert len(statements) == 1
        assert "accounts_membership" in statements[0] and "INSERT INTO usage_usageevent" in statements[0]


@pytest.mark.postgres
def test_the_write_path_statement_is_prepared_once_with_a_generic_plan(post_report, report_body):
    from django.db import connection

    for n in range(3):
        assert post_report(report_body(eventId=f"evt-prepared-{n}")).status_code == 201

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE '%%usage_usageevent%%'"
        )
        prepared = cursor.fetchall()
    assert len(prepared) == 1, prepared
    statement, generic_plans, custom_plans = prepared[0]
    assert "accounts_membership" in statement and "INSERT INTO usage_usageevent" in statement
    assert (generic_plans, custom_plans) == (3, 0)


def test_a_replay_costs_one_query(post_report, report_body, django_assert_max_num_queries):
    post_report(report_body(eventId="evt-1"))

    # On PostgreSQL the report's one statement, in a savepoint of the test's transaction
    # (rolled back: the statement posted nothing).
    with django_assert_max_num_queries(4) as captured:
        assert post_report(report_body(eventId="evt-1")).status_code == 200
    assert len([q for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]) == 1


def test_redis_is_written_after_commit_with_the_new_balance_and_version(
    post_report, report_body, organization, redis_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post_report(report_body())

    wallet = Account.objects.get(organization=organization)
    stored = redis_client.hgetall(f"{settings.REDIS_KEY_PREFIX}:org:{organization.pk}")
    assert stored["balance"] == "95" == str(wallet.balance)
    assert stored["version"] == str(wallet.version)


def test_crossing_the_low_credit_threshold_queues_one_alert(
    post_report, report_body, organization, django_capture_on_commit_callbacks, mailoutbox
):
    set_wallet(organization=organization, low_credit_threshold=90)

    with django_capture_on_commit_callbacks(execute=True) as first:
        post_report(report_body(creditsUsed=5))
    with django_capture_on_commit_callbacks(execute=True) as crossing:
        post_report(report_body(creditsUsed=10))
    with django_capture_on_commit_callbacks(execute=True) as below:
        post_report(report_body(creditsUsed=10))

    assert len(crossing) == len(first) + 1
    assert len(below) == len(first)
    assert len(mailoutbox) == 1
    assert Account.objects.get(organization=organization).low_credit_alerted is True


def test_a_query_type_that_is_only_part_of_an_allowed_one_is_refused(post_report, report_body):
    assert_error(post_report(report_body(queryType="stand")), 403, "query_type_not_allowed")
