"""The portal's usage page: chart of the last 30 days, totals, a filterable table, CSV download."""

from datetime import UTC, timedelta
from urllib.parse import urlencode

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.selectors import get_organization_for_request
from apikeys.models import ApiKey
from usage import selectors
from usage.charts import stacked_bars
from usage.models import UsageEvent
from usage.serializers import QUERY_TYPE_PATTERN

PAGE_SIZE = 50


class UsageFilterForm(forms.Form):
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    api_key = forms.ModelChoiceField(queryset=ApiKey.objects.none(), required=False, label="API key")
    query_type = forms.RegexField(regex=QUERY_TYPE_PATTERN, required=False, label="Query type", max_length=64)

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["api_key"].queryset = ApiKey.objects.filter(organization=organization).order_by("name")

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise forms.ValidationError("“From” must not be after “To”.")
        return data

    def filters(self) -> selectors.UsageFilters:
        if not self.is_valid():
            return selectors.UsageFilters()
        data = self.cleaned_data
        return selectors.UsageFilters(
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            api_key_id=data["api_key"].pk if data.get("api_key") else None,
            query_type=data.get("query_type") or None,
        )


# The customer API's names for the page form's filters (the CSV links go to the API).
_API_PARAMETERS = {"date_from": "from", "date_to": "to", "api_key": "apiKeyId", "query_type": "queryType"}


def _query_string(filters: selectors.UsageFilters, *, for_api: bool, **extra: str) -> str:
    params = {
        "date_from": filters.date_from.isoformat() if filters.date_from else None,
        "date_to": filters.date_to.isoformat() if filters.date_to else None,
        "api_key": filters.api_key_id,
        "query_type": filters.query_type,
    }
    if for_api:
        params = {_API_PARAMETERS[name]: value for name, value in params.items()}
    return urlencode({key: value for key, value in {**params, **extra}.items() if value is not None})


@login_required
def usage(request: HttpRequest) -> HttpResponse:
    organization = get_organization_for_request(request)
    form = UsageFilterForm(request.GET or None, organization=organization)
    filters = form.filters()
    events = UsageEvent.objects.filter(organization=organization)

    today = timezone.now().astimezone(UTC).date()
    first_day = today - timedelta(days=29)
    chart_filters = selectors.UsageFilters(api_key_id=filters.api_key_id, query_type=filters.query_type)
    days = selectors.daily_credits_by_query_type(chart_filters.apply(events), first_day=first_day, last_day=today)
    totals_filters = filters
    if filters.date_from is None and filters.date_to is None:
        totals_filters = selectors.UsageFilters(
            date_from=first_day, date_to=today, api_key_id=filters.api_key_id, query_type=filters.query_type
        )
    summary = selectors.summarize_usage(events, filters=totals_filters)

    after = selectors.decode_cursor(request.GET.get("cursor", "")) if request.GET.get("cursor") else None
    rows, next_position = selectors.list_usage_page(events, filters=filters, after=after, limit=PAGE_SIZE)
    next_query = None
    if next_position:
        next_query = _query_string(filters, for_api=False, cursor=selectors.encode_cursor(*next_position))
    return render(
        request,
        "usage/usage.html",
        {
            "organization": organization,
            "form": form,
            "chart": stacked_bars(days),
            "summary": summary,
            "totals_from": totals_filters.date_from,
            "totals_to": totals_filters.date_to,
            "rows": rows,
            "next_query": next_query,
            "csv_query": _query_string(filters, for_api=True, format="csv"),
            "summary_csv_query": _query_string(totals_filters, for_api=True, format="csv"),
        },
    )
