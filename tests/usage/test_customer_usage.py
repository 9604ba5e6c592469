"""The customer's usage: GET /api/usage, /api/usage/summary, their CSV, the portal page and the dashboard panel."""

import csv
import html
import io
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apikeys.services import issue_api_key
from billing.services import change_plan
from credits.services import grant_credits
from usage.services import UsageReport, record_usage


@pytest.fixture
def history(owner, organization, api_key, funded, outsider):
    """Usage over three days on two keys and two query types, and one event of another organization."""
    change_plan(organization=organization, plan_code="professional")
    grant_credits(organization=organization, amount=1000, reason="more")
    second_key, _ = issue_api_key(organization=organization, created_by=owner, name="Staging")
    now = timezone.now()
    plan = [
        (3, api_key, "standard", 10),
        (3, second_key, "premium", 20),
        (2, api_key, "standard", 5),
        (1, api_key, "premium", 7),
        (0, second_key, "standard", 1),
    ]
    for n, (days_ago, key, query_type, credits) in enumerate(plan):
        record_usage(
            report=UsageReport(
                user_id=owner.pk,
                api_key_id=key.pk,
                credits=credits,
                query_type=query_type,
                idempotency_key=f"h{n}",
                metadata={"n": n},
            ),
            now=now - timedelta(days=days_ago),
        )
    other_org = outsider.membership.organization
    grant_credits(organization=other_org, amount=10, reason="t")
    other_key, _ = issue_api_key(organization=other_org, created_by=outsider, name="Theirs")
    record_usage(report=UsageReport(user_id=outsider.pk, api_key_id=other_key.pk, credits=3, query_type="standard"))
    return {"first": api_key, "second": second_key, "now": now}


@pytest.fixture
def owner_client(owner):
    client = APIClient()
    client.force_login(owner)
    return client


def test_the_list_shows_the_organizations_usage_newest_first(owner_client, history):
    body = owner_client.get("/api/usage").json()

    assert [row["creditsUsed"] for row in body["results"]] == [1, 7, 5, 20, 10]
    assert body["nextCursor"] is None
    first = body["results"][0]
    assert first["eventId"] == "h4" and first["apiKeyId"] == history["second"].pk
    assert first["usageDateTime"].endswith("Z") and first["metadata"] == {"n": 4}


def test_keyset_pages_cover_everything_once(owner_client, history):
    seen = []
    cursor = None
    while True:
        body = owner_client.get("/api/usage", {"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [row["usageId"] for row in body["results"]]
        cursor = body["nextCursor"]
        if cursor is None:
            break

    assert len(seen) == len(set(seen)) == 5


def test_the_list_filters_by_key_query_type_and_dates(owner_client, history):
    by_key = owner_client.get("/api/usage", {"apiKeyId": history["second"].pk}).json()["results"]
    by_type = owner_client.get("/api/usage", {"queryType": "premium"}).json()["results"]
    day = (history["now"] - timedelta(days=2)).date().isoformat()
    by_day = owner_client.get("/api/usage", {"from": day, "to": day}).json()["results"]

    assert [row["creditsUsed"] for row in by_key] == [1, 20]
    assert [row["creditsUsed"] for row in by_type] == [7, 20]
    assert [row["creditsUsed"] for row in by_day] == [5]


@pytest.mark.parametrize(
    "params",
    [{"from": "yesterday"}, {"apiKeyId": "abc"}, {"queryType": "Bad Type"}, {"limit": "0"}, {"cursor": "!!"}],
)
def test_bad_filters_are_a_400(owner_client, history, params):
    response = owner_client.get("/api/usage", params)

    assert response.status_code == 400 and response.json()["error"] == "validation_error"
    assert set(response.json()["fields"]) == set(params)


@pytest.mark.parametrize("path", ["/api/usage", "/api/usage/summary"])
def test_a_bad_date_is_reported_under_the_parameter_sent(owner_client, history, path):
    response = owner_client.get(path, {"from": "garbage", "to": "2026-13-01"})

    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"from", "to"}


def test_the_list_is_readable_with_the_organizations_api_key(owner, organization, history):
    _, raw_key = issue_api_key(organization=organization, created_by=owner, name="Reader")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    assert len(client.get("/api/usage").json()["results"]) == 5


def test_another_organization_sees_only_its_own_usage(outsider, history):
    client = APIClient()
    client.force_login(outsider)

    assert [row["creditsUsed"] for row in client.get("/api/usage").json()["results"]] == [3]
    assert client.get("/api/usage", {"apiKeyId": history["first"].pk}).json()["results"] == []


def test_the_list_needs_credentials(history):
    assert APIClient().get("/api/usage").status_code == 401


def test_the_list_downloads_as_csv(owner_client, history):
    response = owner_client.get("/api/usage", {"format": "csv", "queryType": "premium"})

    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["creditsUsed"] for row in rows] == ["7", "20"]
    assert rows[0]["metadata"] == '{"n": 3}'


def test_a_csv_request_with_bad_filters_gets_the_json_envelope(owner_client, history):
    response = owner_client.get("/api/usage", {"format": "csv", "from": "nope"})

    assert response.status_code == 400 and response.json()["error"] == "validation_error"


def test_the_summary_sums_per_day_and_query_type_and_per_key(owner_client, history):
    body = owner_client.get("/api/usage/summary").json()

    assert body["totals"] == {"credits": 43, "events": 5}
    assert sum(row["credits"] for row in body["byDay"]) == 43
    assert {(row["queryType"], row["credits"]) for row in body["byDay"]} >= {("premium", 20), ("standard", 10)}
    assert [(row["apiKeyId"], row["credits"], row["events"]) for row in body["byApiKey"]] == [
        (history["first"].pk, 22, 3),
        (history["second"].pk, 21, 2),
    ]


def test_the_summary_downloads_as_csv(owner_client, history):
    response = owner_client.get("/api/usage/summary", {"format": "csv"})

    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {row["group"] for row in rows} == {"day", "apiKey"}
    assert sum(int(row["credits"]) for row in rows if row["group"] == "day") == 43


def test_the_usage_page_draws_the_chart_totals_and_table(owner_client, history):
    response = owner_client.get("/usage/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "<svg" in page and page.count('fill="#') >= 4
    assert "43" in page and "Download CSV" in page
    assert "h4" in page
    assert "Theirs" not in page


def test_the_usage_page_filters_the_table(owner_client, history):
    page = owner_client.get("/usage/", {"query_type": "premium"}).content.decode()

    assert "<code>h3</code>" in page and "<code>h4</code>" not in page


def test_the_usage_pages_older_link_keeps_the_filters(owner_client, history, monkeypatch):
    """Found from outside: the link wrote the API's parameter names, which the page's form
    does not read, so page 2 lost the filters."""
    monkeypatch.setattr("usage.views.PAGE_SIZE", 2)
    first = owner_client.get("/usage/", {"query_type": "standard"})
    older = re.search(r'href="\?([^"]+)">Older usage', first.content.decode()).group(1)

    second = owner_client.get(f"/usage/?{html.unescape(older)}").content.decode()

    assert "<code>h4</code>" in first.content.decode() and "<code>h2</code>" in first.content.decode()
    assert "<code>h0</code>" in second
    assert "<code>h1</code>" not in second and "<code>h3</code>" not in second
    assert 'value="standard"' in second


@pytest.mark.parametrize(
    ("path", "parameter"), [("/usage/", "date_to"), ("/api/usage", "to"), ("/api/usage/summary", "to")]
)
def test_the_last_day_there_is_as_the_end_of_a_range(owner_client, history, path, parameter):
    """Found from outside: the day after 9999-12-31 overflowed (a 500)."""
    response = owner_client.get(path, {parameter: "9999-12-31"})

    assert response.status_code == 200
    if path == "/api/usage":
        assert len(response.json()["results"]) == 5


def test_csv_cells_that_a_spreadsheet_would_run_arrive_as_text(owner_client, history, organization, owner):
    """Found from outside: a member could name a key =HYPERLINK(...) and the admin's summary
    CSV carried it as a formula."""
    formula = '=HYPERLINK("http://evil.example/","click")'
    key, _ = issue_api_key(organization=organization, created_by=owner, name=formula)
    record_usage(
        report=UsageReport(user_id=owner.pk, api_key_id=key.pk, credits=1, query_type="standard", idempotency_key="-1")
    )

    summary = owner_client.get("/api/usage/summary", {"format": "csv"})
    listing = owner_client.get("/api/usage", {"format": "csv"})

    summary_rows = list(csv.DictReader(io.StringIO(b"".join(summary.streaming_content).decode())))
    listing_rows = list(csv.DictReader(io.StringIO(b"".join(listing.streaming_content).decode())))
    assert [row["apiKeyName"] for row in summary_rows if row["apiKeyId"] == str(key.pk)] == ["'" + formula]
    assert listing_rows[0]["eventId"] == "'-1"
    assert listing_rows[1]["eventId"] == "h4"


def test_the_usage_page_needs_a_login(client, history):
    assert client.get("/usage/").status_code == 302


def test_the_dashboard_shows_the_last_seven_days(owner_client, history):
    page = owner_client.get("/dashboard/").content.decode()

    assert "Last 7 days" in page and "43" in page
