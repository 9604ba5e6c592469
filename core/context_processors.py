from django.conf import settings
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from accounts.scoping import get_request_membership

# (url name, label): a page shows in the navigation once its app defines the URL. Every
# page but Settings is an organization's, so a user without one (staff, or someone who
# left theirs) sees only Settings.
WITHOUT_ORGANIZATION = {"accounts_settings"}
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
        has_organization = get_request_membership(request) is not None
        items = []
        for name, label in PORTAL_NAV:
            if not has_organization and name not in WITHOUT_ORGANIZATION:
                continue
            try:
                url = reverse(name)
            except NoReverseMatch:
                continue
            items.append({"url": url, "label": label, "active": request.path.startswith(url)})
        context["portal_nav"] = items
    return context
