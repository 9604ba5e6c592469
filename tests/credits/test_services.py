import pytest

from core.models import AuditEvent, OutboxItem
from credits import services, system_accounts
from credits.errors import (
    CreditsPaused,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidPosting,
    NotASpend,
    OverdraftBelowDebt,
    ReasonRequired,
    ReasonTooLong,
    RefundExceedsSpend,
    SameWallet,
)
from credits.models import Account, Entry, Transaction
from credits.selectors import get_system_account, get_wallet, verify_ledger
from credits.services import Posting
from tests.credits.conftest import balance_of, fund

pytestmark = pytest.mark.django_db


def wallet_version(organization) -> int:
    return get_wallet(organization=organization).version


# --- grant and spend -----------------------------------------------------------------


def test_a_grant_adds_credits_with_two_entries_that_sum_to_zero(make_org):
    organization = make_org()
    txn = fund(organization, 100)
    wallet = get_wallet(organization=organization)
    assert wallet.balance == 100
    assert txn.balances_after == {wallet.pk: 100}
    lines = {(entry.account.code, entry.amount, entry.balance_after) for entry in txn.entries.select_related("account")}
    assert lines == {(system_accounts.PURCHASE_SANDBOX, -100, None), (None, 100, 100)}
    assert get_system_account(system_accounts.PURCHASE_SANDBOX).balance is None


def test_every_posting_bumps_the_wallet_version_and_records_an_outbox_row(make_org):
    organization = make_org()
    before = wallet_version(organization)
    fund(organization, 10)
    services.spend_credits(organization=organization, amount=3)
    assert wallet_version(organization) == before + 2
    assert OutboxItem.objects.filter(topic="org", object_id=organization.pk).exists()


def test_the_org_change_is_handed_to_the_outbox_and_pushed_after_commit(make_org, django_capture_on_commit_callbacks):
    organization = make_org()
    with django_capture_on_commit_callbacks() as callbacks:
        fund(organization, 10)
        assert OutboxItem.objects.pending().filter(topic="org", object_id=organization.pk).exists()
    assert callbacks


@pytest.mark.parametrize("amount", [0, -5, 1.5, "5", True, None, services.MAX_AMOUNT + 1])
def test_a_grant_refuses_an_amount_that_is_not_a_positive_whole_number(make_org, amount):
    organization = make_org()
    with pytest.raises(InvalidPosting):
        services.grant_credits(organization=organization, amount=amount)
    assert not Transaction.objects.exists()


def test_a_spend_takes_credits_to_usage_revenue(make_org):
    organization = make_org(credits=100)
    txn = services.spend_credits(organization=organization, amount=30, reason="query")
    assert balance_of(organization) == 70
    assert txn.kind == "usage"
    revenue = txn.entries.get(account__code=system_accounts.USAGE_REVENUE)
    assert revenue.amount == 30


def test_a_spend_beyond_the_balance_is_refused_and_writes_nothing(make_org):
    organization = make_org(credits=10)
    count = Transaction.objects.count()
    with pytest.raises(InsufficientCredits) as excinfo:
        services.spend_credits(organization=organization, amount=11)
    assert excinfo.value.code == "insufficient_credits"
    assert excinfo.value.extra == {"remainingCredits": 10}
    assert balance_of(organization) == 10
    assert Transaction.objects.count() == count


def test_a_spend_may_use_the_overdraft_limit_but_not_beyond(make_org):
    organization = make_org(credits=10)
    services.set_wallet(organization=organization, overdraft_limit=5)
    services.spend_credits(organization=organization, amount=15)
    assert balance_of(organization) == -5
    with pytest.raises(InsufficientCredits):
        services.spend_credits(organization=organization, amount=1)


def test_a_paused_wallet_cannot_spend_but_can_receive(make_org):
    organization = make_org(credits=10)
    services.pause_credits(organization=organization)
    with pytest.raises(CreditsPaused) as excinfo:
        services.spend_credits(organization=organization, amount=1)
    assert excinfo.value.code == "credits_paused"
    fund(organization, 5)
    assert balance_of(organization) == 15


def test_the_same_idempotency_key_and_parameters_return_the_first_transaction(make_org):
    organization = make_org(credits=10)
    first = services.spend_credits(organization=organization, amount=4, idempotency_key="usage:1:a")
    again = services.spend_credits(organization=organization, amount=4, idempotency_key="usage:1:a")
    assert again.pk == first.pk
    assert (first.replayed, again.replayed) == (False, True)
    assert again.balances_after == first.balances_after
    assert balance_of(organization) == 6


def test_the_same_idempotency_key_with_other_parameters_is_a_conflict(make_org):
    organization = make_org(credits=10)
    services.spend_credits(organization=organization, amount=4, idempotency_key="usage:1:b")
    with pytest.raises(IdempotencyConflict) as excinfo:
        services.spend_credits(organization=organization, amount=5, idempotency_key="usage:1:b")
    assert excinfo.value.status_code == 409
    assert balance_of(organization) == 6


def test_a_refused_spend_does_not_use_up_its_idempotency_key(make_org):
    organization = make_org(credits=3)
    with pytest.raises(InsufficientCredits):
        services.spend_credits(organization=organization, amount=5, idempotency_key="usage:1:c")
    fund(organization, 10)
    txn = services.spend_credits(organization=organization, amount=5, idempotency_key="usage:1:c")
    assert not txn.replayed
    assert balance_of(organization) == 8


# --- post_transaction rules -------------------------------------------------------------


def test_postings_that_do_not_sum_to_zero_are_refused(make_org):
    wallet = get_wallet(organization=make_org())
    source = get_system_account(system_accounts.PROMOTION_GRANTS)
    with pytest.raises(InvalidPosting, match="sum to zero"):
        services.post_transaction(kind="promotion", postings=[Posting(source, -5), Posting(wallet, 4)])
    assert not Entry.objects.exists()


@pytest.mark.parametrize(
    "amounts, kind, message",
    [([5], "promotion", "at least two"), ([-5, 0, 5], "promotion", "non-zero"), ([-5, 5], "gift", "Unknown")],
)
def test_malformed_postings_are_refused(make_org, amounts, kind, message):
    wallet = get_wallet(organization=make_org())
    source = get_system_account(system_accounts.PROMOTION_GRANTS)
    accounts = [source, wallet, source]
    postings = [Posting(account, amount) for account, amount in zip(accounts, amounts, strict=False)]
    with pytest.raises(InvalidPosting, match=message):
        services.post_transaction(kind=kind, postings=postings)


def test_a_wallet_appears_once_in_a_transaction(make_org):
    organization = make_org(credits=10)
    wallet = get_wallet(organization=organization)
    source = get_system_account(system_accounts.PROMOTION_GRANTS)
    with pytest.raises(InvalidPosting, match="once"):
        services.post_transaction(
            kind="promotion", postings=[Posting(source, -2), Posting(wallet, 3), Posting(wallet, -1)]
        )


def test_a_transaction_failing_on_its_second_wallet_leaves_nothing(make_org):
    rich, poor = make_org(credits=100), make_org(credits=1)
    rich_wallet, poor_wallet = get_wallet(organization=rich), get_wallet(organization=poor)
    revenue = get_system_account(system_accounts.USAGE_REVENUE)
    before = (Transaction.objects.count(), Entry.objects.count(), rich_wallet.version)
    with pytest.raises(InsufficientCredits):
        services.post_transaction(
            kind="usage",
            postings=[Posting(rich_wallet, -10), Posting(poor_wallet, -10), Posting(revenue, 20)],
        )
    rich_wallet.refresh_from_db()
    assert (Transaction.objects.count(), Entry.objects.count(), rich_wallet.version) == before
    assert rich_wallet.balance == 100


def test_a_spend_costs_few_queries(make_org, django_assert_max_num_queries):
    organization = make_org(credits=100)
    get_system_account(system_accounts.USAGE_REVENUE)
    # wallet lookup, savepoint + release (the test runs in a transaction), transaction, wallet update, entries, outbox
    with django_assert_max_num_queries(7):
        services.spend_credits(organization=organization, amount=1)


# --- refunds -----------------------------------------------------------------------------


def test_a_spend_can_be_refunded_in_parts_up_to_its_amount(make_org):
    organization = make_org(credits=100)
    spend = services.spend_credits(organization=organization, amount=30)
    services.refund_credits(original=spend, amount=10, reason="slow query")
    refund = services.refund_credits(original=spend, amount=20, reason="slow query")
    assert refund.related_id == spend.pk
    assert refund.kind == "refund"
    assert balance_of(organization) == 100
    with pytest.raises(RefundExceedsSpend) as excinfo:
        services.refund_credits(original=spend, amount=1, reason="again")
    assert excinfo.value.extra == {"refundable": 0}


def test_a_refund_larger_than_the_spend_is_refused(make_org):
    organization = make_org(credits=100)
    spend = services.spend_credits(organization=organization, amount=30)
    with pytest.raises(RefundExceedsSpend):
        services.refund_credits(original=spend, amount=31, reason="too much")
    assert balance_of(organization) == 70


def test_only_a_spend_can_be_refunded(make_org):
    organization = make_org()
    grant = fund(organization, 50)
    with pytest.raises(NotASpend):
        services.refund_credits(original=grant, amount=5, reason="not a spend")
    spend = services.spend_credits(organization=organization, amount=5)
    refund = services.refund_credits(original=spend, amount=5, reason="ok")
    with pytest.raises(NotASpend):
        services.refund_credits(original=refund, amount=1, reason="refund of a refund")


def test_a_refund_needs_a_reason_and_reaches_a_paused_wallet(make_org):
    organization = make_org(credits=10)
    spend = services.spend_credits(organization=organization, amount=5)
    with pytest.raises(ReasonRequired):
        services.refund_credits(original=spend, amount=5, reason="  ")
    services.pause_credits(organization=organization)
    services.refund_credits(original=spend, amount=5, reason="outage")
    assert balance_of(organization) == 10


def test_a_reason_longer_than_the_memo_column_is_refused_whole_and_changes_nothing(make_org):
    organization = make_org(credits=10)
    spend = services.spend_credits(organization=organization, amount=5)
    other = make_org()
    too_long = "x" * (services.MAX_REASON_LENGTH + 1)
    transactions = Transaction.objects.count()
    attempts = [
        lambda: services.admin_add_credits(organization=organization, amount=1, reason=too_long),
        lambda: services.admin_remove_credits(organization=organization, amount=1, reason=too_long),
        lambda: services.refund_credits(original=spend, amount=1, reason=too_long),
        lambda: services.transfer_credits(
            from_organization=organization, to_organization=other, amount=1, reason=too_long
        ),
        lambda: services.grant_credits(organization=organization, amount=1, reason=too_long),
        lambda: services.spend_credits(organization=organization, amount=1, reason=too_long),
    ]
    for attempt in attempts:
        with pytest.raises(ReasonTooLong, match=f"501 characters long: at most {services.MAX_REASON_LENGTH}"):
            attempt()
    assert Transaction.objects.count() == transactions
    assert (balance_of(organization), balance_of(other)) == (5, 0)
    assert not AuditEvent.objects.filter(event__startswith="credits.admin").exists()


def test_a_reason_of_exactly_the_memo_column_is_kept_whole(make_org):
    organization = make_org()
    reason = "y" * services.MAX_REASON_LENGTH
    txn = services.admin_add_credits(organization=organization, amount=1, reason=f"  {reason}  ")
    assert Transaction.objects.get(pk=txn.pk).memo == reason


def test_a_refund_replayed_with_its_key_is_not_counted_twice(make_org):
    organization = make_org(credits=10)
    spend = services.spend_credits(organization=organization, amount=5)
    first = services.refund_credits(original=spend, amount=5, reason="outage", idempotency_key="refund:1")
    again = services.refund_credits(original=spend, amount=5, reason="outage", idempotency_key="refund:1")
    assert again.pk == first.pk and again.replayed
    with pytest.raises(IdempotencyConflict):
        services.refund_credits(original=spend, amount=4, reason="outage", idempotency_key="refund:1")
    assert balance_of(organization) == 10


# --- transfers -----------------------------------------------------------------------------


def test_a_transfer_moves_credits_between_two_wallets(make_org):
    source, target = make_org(credits=50), make_org()
    txn = services.transfer_credits(from_organization=source, to_organization=target, amount=20, reason="share")
    assert (balance_of(source), balance_of(target)) == (30, 20)
    assert txn.kind == "transfer"
    assert sorted(txn.balances_after.values()) == [20, 30]


def test_a_transfer_is_refused_to_the_same_org_beyond_the_balance_or_from_a_paused_wallet(make_org):
    source, target = make_org(credits=50), make_org()
    with pytest.raises(SameWallet):
        services.transfer_credits(from_organization=source, to_organization=source, amount=1, reason="x")
    with pytest.raises(InsufficientCredits):
        services.transfer_credits(from_organization=source, to_organization=target, amount=51, reason="x")
    services.pause_credits(organization=source)
    with pytest.raises(CreditsPaused):
        services.transfer_credits(from_organization=source, to_organization=target, amount=1, reason="x")
    services.pause_credits(organization=target)
    services.resume_credits(organization=source)
    services.transfer_credits(from_organization=source, to_organization=target, amount=5, reason="to a paused one")
    assert (balance_of(source), balance_of(target)) == (45, 5)


# --- admin adjustments ----------------------------------------------------------------------


def test_admin_add_and_remove_need_a_reason_and_are_audited(make_org, staff):
    organization = make_org()
    with pytest.raises(ReasonRequired) as excinfo:
        services.admin_add_credits(organization=organization, amount=5, reason="")
    assert excinfo.value.code == "validation_error"
    services.admin_add_credits(organization=organization, amount=50, reason="goodwill", actor=staff)
    services.admin_remove_credits(organization=organization, amount=20, reason="mistake", actor=staff)
    assert balance_of(organization) == 30
    events = list(AuditEvent.objects.filter(organization=organization).order_by("id").values_list("event", "new_value"))
    assert events == [
        ("credits.admin_add", {"balance": 50, "amount": 50, "reason": "goodwill"}),
        ("credits.admin_remove", {"balance": 30, "amount": -20, "reason": "mistake"}),
    ]
    assert AuditEvent.objects.filter(actor=staff).count() == 2


def test_admin_remove_may_use_the_overdraft_and_works_on_a_paused_wallet(make_org):
    organization = make_org(credits=10)
    services.set_wallet(organization=organization, overdraft_limit=5)
    services.pause_credits(organization=organization)
    services.admin_remove_credits(organization=organization, amount=15, reason="chargeback")
    assert balance_of(organization) == -5
    with pytest.raises(InsufficientCredits):
        services.admin_remove_credits(organization=organization, amount=1, reason="more")


def test_an_admin_adjustment_replayed_is_audited_once(make_org):
    organization = make_org()
    for _ in range(2):
        services.admin_add_credits(organization=organization, amount=5, reason="r", idempotency_key="adm:1")
    assert balance_of(organization) == 5
    assert AuditEvent.objects.filter(event="credits.admin_add").count() == 1


# --- pause, resume, limits, versions ---------------------------------------------------------


def test_pause_and_resume_bump_the_version_and_audit_once(make_org, staff, django_capture_on_commit_callbacks):
    organization = make_org()
    version = wallet_version(organization)
    with django_capture_on_commit_callbacks() as callbacks:
        wallet = services.pause_credits(organization=organization, actor=staff)
    assert callbacks  # the Redis push
    assert (wallet.status, wallet.version) == ("paused", version + 1)
    services.pause_credits(organization=organization, actor=staff)
    assert wallet_version(organization) == version + 1
    wallet = services.resume_credits(organization=organization, actor=staff)
    services.resume_credits(organization=organization, actor=staff)
    assert (wallet.status, wallet.version) == ("active", version + 2)
    events = list(AuditEvent.objects.filter(organization=organization).values_list("event", "old_value", "new_value"))
    assert sorted(events) == [("credits.paused", "active", "paused"), ("credits.resumed", "paused", "active")]


def test_set_wallet_changes_limits_bumps_the_version_and_audits(make_org, staff):
    organization = make_org()
    version = wallet_version(organization)
    wallet = services.set_wallet(organization=organization, overdraft_limit=100, low_credit_threshold=20, actor=staff)
    assert (wallet.overdraft_limit, wallet.low_credit_threshold, wallet.version) == (100, 20, version + 1)
    event = AuditEvent.objects.get(event="credits.wallet_settings")
    assert event.old_value == {"overdraft_limit": 0, "low_credit_threshold": None}
    assert event.new_value == {"overdraft_limit": 100, "low_credit_threshold": 20}
    wallet = services.set_wallet(organization=organization, low_credit_threshold=None)
    assert (wallet.overdraft_limit, wallet.low_credit_threshold) == (100, None)


def test_set_wallet_without_a_change_writes_nothing(make_org):
    organization = make_org()
    version = wallet_version(organization)
    services.set_wallet(organization=organization)
    services.set_wallet(organization=organization, overdraft_limit=0, low_credit_threshold=None)
    assert wallet_version(organization) == version
    assert not AuditEvent.objects.filter(event="credits.wallet_settings").exists()


@pytest.mark.parametrize("options", [{"overdraft_limit": -1}, {"low_credit_threshold": -1}, {"overdraft_limit": 1.5}])
def test_set_wallet_refuses_negative_numbers(make_org, options):
    organization = make_org()
    with pytest.raises(InvalidPosting):
        services.set_wallet(organization=organization, **options)
    assert get_wallet(organization=organization).overdraft_limit == 0


def test_the_overdraft_limit_cannot_go_below_the_current_debt(make_org):
    organization = make_org()
    services.set_wallet(organization=organization, overdraft_limit=50)
    services.spend_credits(organization=organization, amount=30)
    with pytest.raises(OverdraftBelowDebt) as excinfo:
        services.set_wallet(organization=organization, overdraft_limit=29)
    assert excinfo.value.code == "overdraft_below_debt"
    services.set_wallet(organization=organization, overdraft_limit=30)
    assert get_wallet(organization=organization).overdraft_limit == 30


def test_bump_wallet_version_adds_one_and_records_the_change(make_org):
    organization = make_org()
    version = wallet_version(organization)
    wallet = services.bump_wallet_version(organization=organization)
    assert wallet.version == wallet_version(organization) == version + 1
    assert wallet.balance == 0


# --- reclaim ---------------------------------------------------------------------------------


def reclaim(organization, amount, key="stripe:refund:1", **kwargs):
    return services.reclaim_credits(
        organization=organization,
        amount=amount,
        kind=Transaction.Kind.DISPUTE_REFUND,
        source=system_accounts.DISPUTES,
        reason="card dispute",
        idempotency_key=key,
        **kwargs,
    )


def test_reclaim_takes_everything_when_the_wallet_holds_it(make_org):
    organization = make_org(credits=100)
    txn, shortfall = reclaim(organization, 60)
    assert (shortfall, balance_of(organization), txn.kind) == (0, 40, "dispute_refund")
    assert txn.metadata["reclaim"] == {"requested": 60, "source": "disputes", "shortfall": 0}


def test_reclaim_takes_what_it_can_within_the_overdraft_even_when_paused(make_org):
    organization = make_org(credits=30)
    services.set_wallet(organization=organization, overdraft_limit=10)
    services.pause_credits(organization=organization)
    txn, shortfall = reclaim(organization, 100)
    assert (shortfall, balance_of(organization)) == (60, -10)
    assert txn.entries.get(account__kind="customer").amount == -40


def test_reclaim_from_an_empty_wallet_takes_nothing(make_org):
    organization = make_org()
    assert reclaim(organization, 25) == (None, 25)
    assert not Transaction.objects.filter(kind="dispute_refund").exists()


def test_reclaim_is_idempotent_on_its_key(make_org):
    organization = make_org(credits=30)
    first, shortfall = reclaim(organization, 50)
    fund(organization, 100)
    again, again_shortfall = reclaim(organization, 50)
    assert (again.pk, again.replayed, again_shortfall) == (first.pk, True, shortfall) == (first.pk, True, 20)
    assert balance_of(organization) == 100
    with pytest.raises(IdempotencyConflict):
        reclaim(organization, 51)


def test_the_ledger_verifies_after_every_kind_of_operation(make_org):
    a, b = make_org(credits=100), make_org(credits=10)
    spend = services.spend_credits(organization=a, amount=40)
    services.refund_credits(original=spend, amount=15, reason="r")
    services.transfer_credits(from_organization=a, to_organization=b, amount=5, reason="t")
    services.admin_remove_credits(organization=b, amount=3, reason="r")
    reclaim(b, 100)
    check = verify_ledger()
    assert check.ok, check.violations
    assert check.accounts == Account.objects.count()
