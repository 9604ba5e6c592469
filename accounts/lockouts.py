"""Lock-outs on top of allauth's `login_failed` rate limits.

allauth counts failed log-ins in the Django cache (Redis in production, so every worker
shares the counters) per IP and per account key. When a log-in is refused, we find which
limit is exhausted, record it (accounts.services.record_lockout: the admin shows it and
the account's owner is emailed) and, when staff clear it, delete those counters.
"""

import time

from allauth.core.internal import ratelimit as allauth_ratelimit
from django.core.cache import cache
from django.http import HttpRequest

APP = "allauth.account"
ACTION = "login_failed"


def _rates(per: str) -> list:
    return [rate for rate in allauth_ratelimit.get_rates(app=APP, action=ACTION) if rate.per == per]


def _cache_key(rate, *, rate_key: str | None = None, ip_address: str | None = None) -> str:
    if rate.per == "key":
        return allauth_ratelimit.get_cache_key(None, app=APP, action=ACTION, rate=rate, key=rate_key)  # type: ignore[arg-type]
    return ":".join(["allauth", "rl", APP, ACTION, str(rate), "ip", allauth_ratelimit.truncate_ip(ip_address or "")])


def exhausted_limits(*, rate_key: str, ip_address: str) -> list[tuple[str, float]]:
    """[(scope, seconds until the oldest counted failure expires)] of the limits now reached."""
    found = []
    now = time.time()
    for scope, per in (("account", "key"), ("ip", "ip")):
        for rate in _rates(per):
            history = list(cache.get(_cache_key(rate, rate_key=rate_key, ip_address=ip_address), []))
            allowed, history = allauth_ratelimit.apply_rate(history, now, rate, dry_run=True)
            if not allowed:
                remaining = history[-1] + rate.duration - now if history else rate.duration
                found.append((scope, max(remaining, 1.0)))
    return found


def clear_rate_limits(*, rate_key: str, ip_address: str | None = None) -> None:
    """Delete the failure counters of an account key (and of an IP, when given)."""
    for rate in _rates("key"):
        cache.delete(_cache_key(rate, rate_key=rate_key))
    if ip_address:
        for rate in _rates("ip"):
            cache.delete(_cache_key(rate, ip_address=ip_address))


def client_ip(request: HttpRequest) -> str:
    from allauth.account.adapter import get_adapter

    return get_adapter().get_client_ip(request)
