"""POST /api/usage/report/batch: events in order, each with its own outcome."""

import pytest
from rest_framework.test import APIClient

from apikeys.services import issue_api_key, revoke_api_key
from credits.models import Account
from credits.selectors import verify_ledger
from credits.services import grant_credits, set_wallet
from usage.models import UsageEvent


def balance(organization) -> int:
    return Account.objects.get(organization=organization).balance


@pytest.fixture
def post_batch(service_client):
    def post(events, **headers):
        return service_client.post("/api/usage/report/batch", {"events": events}, format="json", **headers)

    return post


@pytest.fixture
def event(report_body):
    def build(event_id, **overrides):
        return report_body(eventId=event_id, **overrides)

    return build


def test_events_are_applied_in_order_each_with_its_own_outcome(post_batch, event, organization):
    response = post_batch(
        [
            event("a", creditsUsed=10),
            event("a", creditsUsed=10),
            event("b", creditsUsed=500),
            event("c", creditsUsed="5"),
            42,
            event("d", creditsUsed=20, queryType="premium"),
            event("e", creditsUsed=30),
        ]
    )

    assert response.status_code == 200
    body = response.json()
    assert [(r["eventId"], r["status"], r.get("error"), r["remainingCredits"]) for r in body["results"]] == [
        ("a", "recorded", None, 90),
        ("a", "duplicate", None, 90),
        ("b", "rejected", "insufficient_credits", 90),
        ("c", "rejected", "validation_error", 90),
        (None, "rejected", "validation_error", None),
        ("d", "rejected", "query_type_not_allowed", 90),
        ("e", "recorded", None, 60),
    ]
    assert (body["recorded"], body["duplicates"], body["rejected"]) == (2, 1, 4)
    assert body["results"][3]["fields"] == {"creditsUsed": ["Must be a JSON integer."]}
    assert balance(organization) == 60
    assert UsageEvent.objects.count() == 2
    assert verify_ledger().ok


def test_a_repeated_event_id_whose_first_copy_was_rejected_is_tried_again(post_batch, event, organization):
    body = post_batch([event("x", creditsUsed=500), event("x", creditsUsed=5)]).json()

    assert [r["status"] for r in body["results"]] == ["rejected", "recorded"]
    assert balance(organization) == 95


def test_the_same_event_id_with_another_payload_is_a_conflict(post_batch, event):
    body = post_batch([event("x", creditsUsed=5), event("x", creditsUsed=6)]).json()

    assert body["results"][1] == {
        "eventId": "x",
        "status": "rejected",
        "error": "idempotency_conflict",
        "remainingCredits": 95,
    }


def test_an_event_reported_before_is_a_duplicate_with_its_first_answer(post_report, post_batch, event):
    first = post_report(event("x", creditsUsed=5)).json()
    post_report(event("y", creditsUsed=5))

    body = post_batch([event("x", creditsUsed=5)]).json()

    assert body["results"] == [{"eventId": "x", "status": "duplicate", "remainingCredits": first["remainingCredits"]}]


def test_a_batch_event_replays_as_a_single_report(post_report, post_batch, event):
    post_batch([event("x", creditsUsed=5), event("y", creditsUsed=7)])

    again = post_report(event("y", creditsUsed=7))

    assert again.status_code == 200 and again.json()["remainingCredits"] == 88


def test_each_event_needs_an_event_id(post_batch, report_body):
    body = post_batch([report_body()]).json()

    assert body["results"][0]["status"] == "rejected"
    assert body["results"][0]["fields"] == {"eventId": ["This field is required."]}


def test_unknown_users_keys_and_revoked_keys_are_rejected_alone(post_batch, event, organization, owner):
    revoked, _ = issue_api_key(organization=organization, created_by=owner, name="Old")
    revoke_api_key(api_key=revoked)

    body = post_batch(
        [
            event("u", userId=987654321),
            event("k", apiKeyId=987654321),
            event("r", apiKeyId=revoked.pk),
            event("ok", creditsUsed=1),
        ]
    ).json()

    assert [(r["status"], r.get("error"), r["remainingCredits"]) for r in body["results"]] == [
        ("rejected", "unknown_user", None),
        ("rejected", "unknown_api_key", 100),
        ("rejected", "api_key_revoked", 100),
        ("recorded", None, 99),
    ]


def test_events_of_several_organizations_share_a_batch(post_batch, event, organization, outsider):
    other = outsider.membership.organization
    grant_credits(organization=other, amount=40, reason="test")
    other_key, _ = issue_api_key(organization=other, created_by=outsider, name="Theirs")
    theirs = {"userId": outsider.pk, "apiKeyId": other_key.pk}

    body = post_batch(
        [
            event("1", creditsUsed=10),
            event("1", creditsUsed=15, **theirs),
            event("2", creditsUsed=10),
            event("2", creditsUsed=15, **theirs),
        ]
    ).json()

    assert [r["remainingCredits"] for r in body["results"]] == [90, 25, 80, 10]
    assert (balance(organization), balance(other)) == (80, 10)
    assert verify_ledger().ok


def test_an_overdraft_limit_applies_within_a_batch(post_batch, event, organization):
    set_wallet(organization=organization, overdraft_limit=20)

    body = post_batch([event("1", creditsUsed=110), event("2", creditsUsed=11), event("3", creditsUsed=10)]).json()

    assert [r["status"] for r in body["results"]] == ["recorded", "rejected", "recorded"]
    assert balance(organization) == -20


def test_the_wallet_version_grows_by_one_per_posting_and_one_alert_per_crossing(
    post_batch, event, organization, django_capture_on_commit_callbacks, mailoutbox
):
    set_wallet(organization=organization, low_credit_threshold=50)
    version = Account.objects.get(organization=organization).version

    with django_capture_on_commit_callbacks(execute=True):
        post_batch([event(str(n), creditsUsed=20) for n in range(4)])

    wallet = Account.objects.get(organization=organization)
    assert wallet.version == version + 4
    assert wallet.balance == 20 and wallet.low_credit_alerted is True
    assert len(mailoutbox) == 1


def test_the_idempotency_key_header_means_nothing_in_a_batch(post_batch, event):
    body = post_batch([event("a"), event("b")], HTTP_IDEMPOTENCY_KEY="same").json()

    assert body["recorded"] == 2


@pytest.mark.postgres  # SQLite splits bulk inserts into batches of its variable limit
def test_a_batch_costs_the_same_queries_whatever_its_size(
    post_batch, event, organization, django_assert_max_num_queries
):
    post_batch([event("warm-up", creditsUsed=1)])
    grant_credits(organization=organization, amount=1000, reason="more")

    with django_assert_max_num_queries(12) as small:
        post_batch([event(f"s{n}", creditsUsed=1) for n in range(2)])
    with django_assert_max_num_queries(12) as large:
        post_batch([event(f"l{n}", creditsUsed=1) for n in range(200)])

    assert len(large.captured_queries) == len(small.captured_queries)


@pytest.mark.parametrize(
    "body",
    [
        {"events": []},
        {"events": [{}] * 501},
        {"events": "not a list"},
        {"events": None},
        {},
        [{"eventId": "a"}],
        "events",
    ],
    ids=["empty", "501 events", "not a list", "null", "missing", "a list body", "a string body"],
)
def test_a_body_that_is_not_a_batch_is_a_400(service_client, body, funded):
    response = service_client.post("/api/usage/report/batch", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"
    assert balance(funded) == 100


def test_a_batch_without_json_is_a_415(service_client, funded):
    response = service_client.generic("POST", "/api/usage/report/batch", data=b"{}", content_type="text/plain")

    assert response.status_code == 415
    assert response.json()["fields"]["non_field_errors"]


def test_a_batch_needs_a_service_token(event, owner):
    client = APIClient()
    assert client.post("/api/usage/report/batch", {"events": [event("a")]}, format="json").status_code == 401
    client.force_login(owner)
    assert client.post("/api/usage/report/batch", {"events": [event("a")]}, format="json").status_code == 403


def test_a_null_entry_is_rejected_alone(post_batch, event, organization):
    response = post_batch([event("a", creditsUsed=10), None])

    assert response.status_code == 200
    assert [(r["eventId"], r["status"], r.get("error"), r["remainingCredits"]) for r in response.json()["results"]] == [
        ("a", "recorded", None, 90),
        (None, "rejected", "validation_error", None),
    ]
