"""Demo API keys and 30 days of usage for `seed_demo` (adds nothing when the organization has usage)."""

import random
from datetime import UTC, datetime, time, timedelta

from django.utils import timezone

from accounts.models import Membership, Organization
from apikeys.models import ApiKey
from apikeys.services import issue_api_key
from usage.models import UsageEvent
from usage.services import UsageReport, record_usage

DEMO_KEY_NAMES = ["Production", "Staging"]
DEMO_QUERY_TYPES = ["standard", "premium", "export"]


def seed_demo_usage(*, organization: Organization, days: int = 30) -> dict[str, int]:
    """Two API keys (when the organization has none) and a month of reports through `record_usage`."""
    admin = (
        Membership.objects.filter(organization=organization, role=Membership.Role.CLIENT_ADMIN)
        .select_related("user")
        .order_by("pk")
        .first()
    )
    if admin is None:
        return {"apiKeys": 0, "usageEvents": 0}
    keys = list(ApiKey.objects.filter(organization=organization, status=ApiKey.Status.ACTIVE).order_by("pk"))
    created_keys = 0
    if not keys:
        for name in DEMO_KEY_NAMES:
            key, _ = issue_api_key(organization=organization, created_by=admin.user, name=name)
            keys.append(key)
            created_keys += 1
    if UsageEvent.objects.filter(organization=organization).exists():
        return {"apiKeys": created_keys, "usageEvents": 0}

    query_types = [qt for qt in DEMO_QUERY_TYPES if organization.plan.allows_query_type(qt)] or ["standard"]
    rng = random.Random(organization.pk)
    today = timezone.now().astimezone(UTC).date()
    recorded = 0
    for offset in range(days - 1, -1, -1):
        day = today - timedelta(days=offset)
        for n in range(rng.randint(3, 9)):
            when = datetime.combine(day, time(hour=8 + n, minute=rng.randint(0, 59)), tzinfo=UTC)
            if when > timezone.now():
                continue
            report = UsageReport(
                user_id=admin.user_id,
                api_key_id=rng.choice(keys).pk,
                credits=rng.randint(1, 12),
                query_type=rng.choice(query_types),
                metadata={"rows": rng.randint(10, 5000)},
                idempotency_key=f"demo-{day.isoformat()}-{n}",
            )
            record_usage(report=report, now=when)
            recorded += 1
    return {"apiKeys": created_keys, "usageEvents": recorded}
