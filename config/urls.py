from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core import views as core_views

urlpatterns = [
    path("health", core_views.health, name="health"),
    path("ready", core_views.ready, name="ready"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Service and customer APIs: each app owns its paths (exact, no trailing slash).
    path("api/", include("usage.api_urls")),
    path("api/", include("apikeys.api_urls")),
    path("api/", include("credits.api_urls")),
    path("api/", include("billing.api_urls")),
    path("api/", include("accounts.api_urls")),
    # Portal pages.
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
    path("", include("accounts.urls")),
    path("credits/", include("credits.urls")),
    path("keys/", include("apikeys.urls")),
    path("usage/", include("usage.urls")),
    path("billing/", include("billing.urls")),
]
