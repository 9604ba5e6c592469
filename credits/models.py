"""The credit ledger: double entry, integer credits, append-only.

- An Account is either an organization's wallet (kind `customer`) or a system account
  (kind `system`, identified by `code`) where credits come from and go to: purchases per
  payment provider, subscription and promotional grants, usage revenue, adjustments...
- A Transaction groups Entries whose signed amounts sum to zero. Entries are never
  updated or deleted; a mistake is corrected by a reversal transaction.
- A wallet keeps a materialized `balance` and `version`, updated in the same database
  transaction as its entries (reading a balance never sums history); each wallet entry
  stores the balance after it, so the chain can be verified. System accounts do not
  materialize a balance (it is NULL): every usage report credits the usage-revenue
  account, and a running total there would be one row every request in the system
  queues on. Their figures are sums, computed when staff ask.
- Wallet rows are locked last in a posting (entries for one wallet are inserted after its
  lock, so entry ids follow the order of its balances and `balance_after` chains by id).
- `low_credit_alerted` is "below the threshold now": a posting that turns it from False
  to True is a crossing and queues one alert, claimed once in LowCreditAlert.
- On PostgreSQL triggers enforce zero-sum transactions and immutable entries; CHECK
  constraints keep wallets within their overdraft limit everywhere. Only
  credits.services writes these tables.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class Account(models.Model):
    class Kind(models.TextChoices):
        CUSTOMER = "customer", "Customer wallet"
        SYSTEM = "system", "System account"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    organization = models.OneToOneField(
        "accounts.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="wallet"
    )
    code = models.CharField(max_length=64, unique=True, null=True, blank=True)
    name = models.CharField(max_length=200)
    balance = models.BigIntegerField(null=True, blank=True)
    version = models.BigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    overdraft_limit = models.BigIntegerField(default=0)
    low_credit_threshold = models.BigIntegerField(null=True, blank=True)
    low_credit_alerted = models.BooleanField(
        default=False, help_text="An alert went out for the current crossing below the threshold."
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind="customer", organization__isnull=False, code__isnull=True, balance__isnull=False)
                    | Q(kind="system", organization__isnull=True, code__isnull=False, balance__isnull=True)
                ),
                name="credits_account_kind_shape",
            ),
            models.CheckConstraint(
                condition=Q(balance__isnull=True) | Q(balance__gte=-F("overdraft_limit")),
                name="credits_account_within_overdraft",
            ),
            models.CheckConstraint(condition=Q(overdraft_limit__gte=0), name="credits_account_overdraft_nonneg"),
            models.CheckConstraint(
                condition=Q(low_credit_threshold__isnull=True) | Q(low_credit_threshold__gte=0),
                name="credits_account_threshold_nonneg",
            ),
            models.CheckConstraint(condition=Q(status__in=["active", "paused"]), name="credits_account_status_valid"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_wallet(self) -> bool:
        return self.kind == self.Kind.CUSTOMER


class TransactionKind(models.TextChoices):
    PURCHASE = "purchase", "Purchase"
    SUBSCRIPTION_GRANT = "subscription_grant", "Subscription grant"
    PROMOTION = "promotion", "Promotion"
    USAGE = "usage", "Usage"
    REFUND = "refund", "Refund"
    TRANSFER = "transfer", "Transfer"
    ADMIN_ADD = "admin_add", "Admin add"
    ADMIN_REMOVE = "admin_remove", "Admin remove"
    DISPUTE_REFUND = "dispute_refund", "Dispute refund"
    REVERSAL = "reversal", "Reversal"
    EXPIRY = "expiry", "Expiry"


class Transaction(models.Model):
    Kind = TransactionKind

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    fingerprint = models.CharField(
        max_length=64, blank=True, help_text="Hash of the parameters, to tell a replay from a conflict."
    )
    memo = models.CharField(max_length=500, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    related = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="corrections",
        help_text="The transaction this one refunds or reverses.",
        db_index=False,
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        # Usage writes most transactions, with no idempotency key, actor or related
        # transaction: those indexes leave NULLs out (4 index entries fewer per usage
        # transaction). A lookup by value (`= %s`, `IN`) still uses them.
        indexes = [
            models.Index(fields=["actor"], name="credits_txn_actor", condition=Q(actor__isnull=False)),
            models.Index(fields=["related"], name="credits_txn_related", condition=Q(related__isnull=False)),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=TransactionKind.values), name="credits_transaction_kind_valid"),
            models.UniqueConstraint(
                fields=["idempotency_key"],
                name="credits_transaction_idempotency_key_unique",
                condition=Q(idempotency_key__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.id}"


class Entry(models.Model):
    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, related_name="entries")
    # indexed by credits_entry_account_id (account, -id), which serves lookups by account too
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries", db_index=False)
    amount = models.BigIntegerField()
    balance_after = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "entries"
        indexes = [models.Index(fields=["account", "-id"], name="credits_entry_account_id")]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="credits_entry_amount_nonzero"),
        ]

    def __str__(self) -> str:
        return f"{self.amount:+d} on {self.account_id}"


class LowCreditAlert(models.Model):
    """One low-credit email round, claimed by the task before sending so a redelivered task sends nothing.

    `version` is the wallet version of the posting that crossed the threshold: one crossing, one row.
    """

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="low_credit_alerts")
    version = models.BigIntegerField()
    balance = models.BigIntegerField()
    threshold = models.BigIntegerField()
    recipients = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "version"], name="credits_lowcreditalert_once_per_crossing")
        ]

    def __str__(self) -> str:
        return f"Low-credit alert for {self.account_id} at version {self.version}"
