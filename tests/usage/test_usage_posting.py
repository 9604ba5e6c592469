"""credits.usage_posting: the one-statement posting keeps every ledger invariant, like the ORM path."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apikeys.services import issue_api_key
from core.models import OutboxItem
from credits import usage_posting
from credits.errors import CreditsPaused, InsufficientCredits
from credits.models import Account, Entry
from credits.selectors import verify_ledger
from credits.services import grant_credits, pause_credits, set_wallet
from tests.factories import CustomerFactory
from usage.models import UsageEvent
from usage.services import UsageReport, record_usage

VENDORS = ["postgresql", "orm"]


def _customer(slug: str, *, threshold: int | None = 50, overdraft: int = 10):
    user = CustomerFactory(email=f"{slug}@posting.test", org_slug=slug)
    organization = user.membership.organization
    grant_credits(organization=organization, amount=100, reason="test")
    set_wallet(organization=organization, overdraft_limit=overdraft, low_credit_threshold=threshold)
    key, _ = issue_api_key(organization=organization, created_by=user, name="k")
    return user, organization, key


def _charge(user, organization, key, credits: int, event_id: str | None):
    wallet = Account.objects.get(organization=organization)
    return usage_posting.UsageCharge(
        organization_id=organization.pk,
        wallet_id=wallet.pk,
        user_id=user.pk,
        api_key_id=key.pk,
        credits=credits,
        query_type="standard",
        metadata={"n": credits},
        idempotency_key=event_id,
        fingerprint=f"fp-{credits}",
        occurred_at=timezone.now(),
    )


def _ledger_shape(organization):
    wallet = Account.objects.get(organization=organization)
    entries = [
        (entry.amount, entry.balance_after, entry.account_id == wallet.pk)
        for entry in Entry.objects.filter(transaction__usage_events__organization=organization).order_by("id")
    ]
    events = list(
        UsageEvent.objects.filter(organization=organization)
        .order_by("id")
        .values_list("credits", "remaining_credits", "idempotency_key", "metadata", "fingerprint")
    )
    outbox = OutboxItem.objects.pending().filter(topic="org", object_id=organization.pk).exists()
    return (wallet.balance, wallet.low_credit_alerted), entries, events, outbox


@pytest.mark.postgres
def test_the_statement_and_the_orm_path_write_the_same_ledger(monkeypatch, db):
    alerts: dict[str, list] = {"postgresql": [], "orm": []}
    current = {"vendor": ""}

    def fake_alert(*, organization_id, version):
        alerts[current["vendor"]].append(version)

    monkeypatch.setattr(usage_posting, "schedule_low_credit_alert", fake_alert)
    monkeypatch.setattr("credits.services.schedule_low_credit_alert", fake_alert)
    shapes, outcomes, versions = {}, {}, {}
    for vendor in VENDORS:
        current["vendor"] = vendor
        user, organization, key = _customer(f"cmp-{vendor}")
        start_version = Account.objects.get(organization=organization).version
        results = []
        for n, credits in enumerate([20, 30, 10, 45, 6, 4]):
            try:
                posted = usage_posting.post_usage(_charge(user, organization, key, credits, f"e{n}"), vendor=vendor)
                results.append(posted.remaining_credits)
            except (InsufficientCredits, CreditsPaused) as exc:
                results.append((exc.code, exc.extra))
        shapes[vendor] = _ledger_shape(organization)
        outcomes[vendor] = results
        versions[vendor] = Account.objects.get(organization=organization).version - start_version
        alerts[vendor] = [version - start_version for version in alerts[vendor]]

    assert (
        outcomes["postgresql"]
        == outcomes["orm"]
        == [
            80,
            50,
            40,
            -5,
            ("insufficient_credits", {"remainingCredits": -5}),
            -9,
        ]
    )
    assert shapes["postgresql"] == shapes["orm"]
    assert versions["postgresql"] == versions["orm"] == 5
    assert alerts["postgresql"] == alerts["orm"] == [3]
    assert verify_ledger().ok


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_refused_posting_writes_nothing(vendor, db, settings):
    if vendor == "postgresql" and not settings.IS_POSTGRES:
        pytest.skip("needs PostgreSQL")
    user, organization, key = _customer(f"refuse-{vendor}", overdraft=0)
    pause_credits(organization=organization)

    with pytest.raises(CreditsPaused):
        usage_posting.post_usage(_charge(user, organization, key, 5, "p"), vendor=vendor)

    assert not UsageEvent.objects.exists()
    assert Account.objects.get(organization=organization).balance == 100


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_live_key_is_taken_and_the_second_posting_writes_nothing(vendor, db, settings):
    if vendor == "postgresql" and not settings.IS_POSTGRES:
        pytest.skip("needs PostgreSQL")
    user, organization, key = _customer(f"dup-{vendor}")
    usage_posting.post_usage(_charge(user, organization, key, 5, "same"), vendor=vendor)

    with pytest.raises(usage_posting.UsageKeyTaken):
        usage_posting.post_usage(_charge(user, organization, key, 5, "same"), vendor=vendor)

    assert Account.objects.get(organization=organization).balance == 95
    assert UsageEvent.objects.count() == 1


def test_the_ledger_verifies_after_many_reports(db):
    user, organization, key = _customer("many", threshold=500, overdraft=0)
    grant_credits(organization=organization, amount=1000, reason="more")
    for n in range(60):
        report = UsageReport(
            user_id=user.pk, api_key_id=key.pk, credits=n % 7 + 1, query_type="standard", idempotency_key=f"m{n}"
        )
        record_usage(report=report)
    with pytest.raises(InsufficientCredits):
        record_usage(report=UsageReport(user_id=user.pk, api_key_id=key.pk, credits=10_000, query_type="standard"))

    check = verify_ledger()
    assert check.ok, check.violations
    spent = sum(n % 7 + 1 for n in range(60))
    assert Account.objects.get(organization=organization).balance == 1100 - spent


def test_recorded_history_can_be_seeded_in_the_past(db):
    user, _, key = _customer("past")
    when = timezone.now() - timedelta(days=3)

    outcome = record_usage(
        report=UsageReport(user_id=user.pk, api_key_id=key.pk, credits=1, query_type="standard"), now=when
    )

    event = UsageEvent.objects.get(pk=outcome.usage_id)
    assert event.recorded_at == when == event.occurred_at
