from django.conf import settings
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

# (url name, label): a page shows in the navigation once its app defines the URL.
PORTAL_NAV = [
    ("usage:usage", "Usage"),
    ("apikeys:list", "API keys"),
    ("billing:buy", "Buy credits"),
    ("billing:plan", "Plan"),
    ("billing:history", "Purchases"),
    ("accounts_team", "Team"),
    ("accounts_settings", "Settings"),
]


def portal(request: HttpRequest) -> dict:
    context: dict = {"DEBUG": settings.DEBUG, "SITE_NAME": "Creditdesk"}
    if getattr(request, "user", None) is not None and request.user.is_authenticated:
        items = []
        for name, label in PORTAL_NAV:
            try:
                url = reverse(name)
            except NoReverseMatch:
                continue
            items.append({"url": url, "label": label, "active": request.path.startswith(url)})
        context["portal_nav"] = items
    return context
