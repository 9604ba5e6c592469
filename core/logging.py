"""Log formatters that never write a full API key.

A client that puts its key in a URL (`?key=cdk_live_...`) would otherwise have it written
whole: Django's request log carries the request, which the JSON formatter prints with its
query string. The formatters redact what they write, whatever field it came from.
"""

import logging
import re

from pythonjsonlogger.json import JsonFormatter

# A full API key (apikeys.models.KEY_PREFIX and its secret), anywhere in a line.
_API_KEY = re.compile(r"cdk_live_[A-Za-z0-9_\-]+")


def redact_api_keys(text: str) -> str:
    return _API_KEY.sub("cdk_live_[redacted]", text) if "cdk_live_" in text else text


class RedactingMixin:
    """Redacts the line the formatter it is mixed into writes."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_api_keys(super().format(record))


class RedactingFormatter(RedactingMixin, logging.Formatter):
    pass


class RedactingJsonFormatter(RedactingMixin, JsonFormatter):
    pass
