"""gunicorn's settings for production (`gunicorn -c config/gunicorn_settings.py config.wsgi`):
used by `make serve-prod`, the Dockerfile and docker-compose.yml.

The access log names the path only, never the query string or the referer, with long
tokens in the path redacted: clients put API keys in URLs (`?key=cdk_live_...`), and
invitation, email-confirmation and password-reset links carry their secret in the path.
gunicorn writes this line itself, past the Django log's redacting formatter (core.logging).
"""

import re

from gunicorn.glogging import Logger

from core.logging import redact_api_keys

accesslog = "-"
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'

# A path segment that looks like a token: 20 or more characters of a signed or random value.
_TOKEN_SEGMENT = re.compile(r"(?<=/)[A-Za-z0-9_:.\-]{20,}(?=/|$)")


def redact_path(path: str) -> str:
    return _TOKEN_SEGMENT.sub("[redacted]", redact_api_keys(path))


class RedactingAccessLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["U"] = redact_path(atoms["U"] or "")
        return atoms


logger_class = RedactingAccessLogger
