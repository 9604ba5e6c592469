from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.urls import resolve

from core.api import error_response

_STATUS_CODES = {
    400: ("validation_error", "Bad request."),
    403: ("permission_denied", "You do not have permission to perform this action."),
    404: ("not_found", "Not found."),
    405: ("method_not_allowed", "Method not allowed."),
    413: ("payload_too_large", "The request body is too large."),
    415: ("unsupported_media_type", "The request body must be application/json."),
    429: ("throttled", "Too many requests."),
    500: ("server_error", "Internal server error."),
}


class ApiEnvelopeMiddleware:
    """Gives errors raised before a DRF view (no route, oversized body, Django 404/405/500)
    the API envelope under /api/."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith("/api/"):
            return self.get_response(request)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.API_MAX_BODY_BYTES:
            code, detail = _STATUS_CODES[413]
            return error_response(code, f"{detail} The limit is 5 MiB.", 413)

        response = self.get_response(request)
        if response.status_code in _STATUS_CODES and not _is_json(response):
            code, detail = _STATUS_CODES[response.status_code]
            enveloped = error_response(code, detail, response.status_code)
            if response.has_header("Allow"):
                enveloped["Allow"] = response["Allow"]
            return enveloped
        return response


class MethodNotAllowedPageMiddleware:
    """Gives a portal URL's bare 405 the site's own page (found from outside: opening a
    form's action URL, which Django's require_POST answers with an empty body, showed a
    blank page). Under /api/ ApiEnvelopeMiddleware gives it the error envelope instead."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code == 405 and not response.content and not request.path.startswith("/api/"):
            page = HttpResponse(render_to_string("405.html", request=request), status=405)
            if response.has_header("Allow"):
                page["Allow"] = response["Allow"]
            return page
        return response


def _is_json(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").startswith("application/json")


class ServiceApiFastPathMiddleware:
    """Serve the hot endpoints of the service API without the middleware below this one.

    The public query API calls POST /api/usage/report, /api/usage/report/batch and
    /api/keys/verify with a service token and no cookies: sessions, CSRF (DRF views are
    exempt), messages, static files, allauth and the MFA and provider checks have nothing to
    do for them, yet walking those ten middleware cost about a sixth of a report's CPU. A
    request with a session cookie takes the normal path, so session authentication (and its
    403 for a logged-in customer) behaves exactly as before. What the skipped middleware would
    still add to such an answer is added here: the rendering (Django's handler) and the
    Content-Length and the ALLOWED_HOSTS check (CommonMiddleware). Middleware above this one
    (request id, API envelope, SecurityMiddleware) runs as usual.
    """

    PATHS = ("/api/usage/report", "/api/usage/report/batch", "/api/keys/verify")

    def __init__(self, get_response):
        self.get_response = get_response
        self.matches: dict[str, Any] = {}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info not in self.PATHS or settings.SESSION_COOKIE_NAME in request.COOKIES:
            return self.get_response(request)
        request.get_host()  # ALLOWED_HOSTS, as CommonMiddleware checks it on every other request
        match = self.matches.get(request.path_info)
        if match is None:
            match = self.matches[request.path_info] = resolve(request.path_info)
        request.resolver_match = match
        response = match.func(request, *match.args, **match.kwargs)
        if hasattr(response, "render") and callable(response.render):
            response = response.render()
        if not response.streaming and not response.has_header("Content-Length"):
            response.headers["Content-Length"] = str(len(response.content))
        return response
