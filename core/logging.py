"""Log formatters that never write a full API key, and the access log's path redaction.

A client that puts its key in a URL (`?key=cdk_live_...`) would otherwise have it written
whole: Django's request log carries the request, which the JSON formatter prints with its
query string. The formatters redact what they write, whatever field it came from.
"""

import logging
import re

from pythonjsonlogger.json import JsonFormatter

# A full API key (apikeys.models.KEY_PREFIX and its secret), anywhere in a line.
_API_KEY = re.compile(r"cdk_live_[A-Za-z0-9_\-]+")


# A path segment that looks like a token: 20 or more characters of a signed or random value.
_TOKEN_SEGMENT = re.compile(r"(?<=/)[A-Za-z0-9_:.\-]{20,}(?=/|$)")


def redact_api_keys(text: str) -> str:
    return _API_KEY.sub("cdk_live_[redacted]", text) if "cdk_live_" in text else text


def redact_path(path: str) -> str:
    """A URL path as the access log may write it: API keys and token-like segments redacted."""
    return _TOKEN_SEGMENT.sub("[redacted]", redact_api_keys(path))


class RedactingMixin:
    """Redacts the line the formatter it is mixed into writes."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_api_keys(super().format(record))


class RedactingFormatter(RedactingMixin, logging.Formatter):
    pass


class RedactingJsonFormatter(RedactingMixin, JsonFormatter):
    pass


class RedactAccessLogPath(logging.Filter):
    """Redacts the path of granian's access log records (config.serve).

    granian writes that line itself, past the Django log's formatters; invitation,
    email-confirmation and password-reset links carry their secret in the path. The record's
    arguments are granian's dict of atoms (`path`, `query_string`, ...); the line's format
    (config.serve.ACCESS_LOG_FORMAT) leaves the query string out.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict) and isinstance(record.args.get("path"), str):
            record.args = {**record.args, "path": redact_path(record.args["path"])}
        return True
