from datetime import UTC, timedelta

from django import template
from django.utils import timezone

from usage import selectors
from usage.charts import stacked_bars
from usage.models import UsageEvent

register = template.Library()


@register.inclusion_tag("usage/_dashboard_panel.html")
def usage_last_7_days(organization) -> dict:
    """The dashboard's panel: credits and requests of the last 7 days, and their chart."""
    today = timezone.now().astimezone(UTC).date()
    first_day = today - timedelta(days=6)
    events = UsageEvent.objects.filter(organization=organization)
    days = selectors.daily_credits_by_query_type(events, first_day=first_day, last_day=today)
    summary = selectors.summarize_usage(events, filters=selectors.UsageFilters(date_from=first_day, date_to=today))
    return {"summary": summary, "chart": stacked_bars(days, width=640, height=160, label_every=1)}
