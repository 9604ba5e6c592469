from django.urls import path

from usage import api

urlpatterns = [
    path("usage/report", api.UsageReportApi.as_view(), name="api-usage-report"),
    path("usage/report/batch", api.UsageReportBatchApi.as_view(), name="api-usage-report-batch"),
    path("users/<str:userId>/credits", api.UserCreditsApi.as_view(), name="api-user-credits"),
    path("usage", api.UsageListApi.as_view(), name="api-usage-list"),
    path("usage/summary", api.UsageSummaryApi.as_view(), name="api-usage-summary"),
]
