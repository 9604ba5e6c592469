"""Log formatters that never write a full API key or a link's token, and the access log's path.

A client that puts its key in a URL (`?key=cdk_live_...`) would otherwise have it written
whole: Django's request log carries the request, which the JSON formatter prints with its
query string. The formatters redact what they write, whatever field it came from. Lines
about a request (Django's request log: 4xx and 5xx answers) also lose token-like path
segments: invitation, email-confirmation and password-reset links carry their secret in the
path, and a valid invitation opened by the wrong user is a 404.
"""

import logging
import re

from pythonjsonlogger.json import JsonFormatter

# A full API key (apikeys.models.KEY_PREFIX and its secret), anywhere in a line.
_API_KEY = re.compile(r"cdk_live_[A-Za-z0-9_\-]+")

# A path segment that looks like a token: 20 or more characters of a signed or random value,
# not a number, a UUID (ids, kept for debugging) nor a Python file (tracebacks). The segment
# ends the path or is followed by what ends a path in a log line.
_SEGMENT_END = r"(?=[/;'\"\s]|$)"
_TOKEN_SEGMENT = re.compile(
    r"(?<=/)"
    rf"(?![0-9]+{_SEGMENT_END})"
    rf"(?![A-Za-z0-9_.\-]+\.py{_SEGMENT_END})"
    rf"(?![0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}{_SEGMENT_END})"
    rf"[A-Za-z0-9_:.\-]{{20,}}{_SEGMENT_END}"
)

# What a decoded path may carry that would let a client forge or break a log line.
_UNSAFE_IN_LINE = re.compile(r'[\x00-\x20"\\\x7f-\x9f]')


def redact_api_keys(text: str) -> str:
    return _API_KEY.sub("cdk_live_[redacted]", text) if "cdk_live_" in text else text


def redact_tokens(text: str) -> str:
    return _TOKEN_SEGMENT.sub("[redacted]", redact_api_keys(text))


def redact_path(path: str) -> str:
    """A decoded URL path as the access log writes it: API keys and token-like segments
    redacted, and control characters, spaces, quotes and backslashes percent-encoded again,
    so that a path cannot forge a line (`%0A127.0.0.1 [...] "GET /admin/ ..."`)."""
    return _UNSAFE_IN_LINE.sub(lambda char: f"%{ord(char.group()):02X}", redact_tokens(path))


class RedactingMixin:
    """Redacts the line the formatter it is mixed into writes."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        return redact_tokens(line) if hasattr(record, "request") else redact_api_keys(line)


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
