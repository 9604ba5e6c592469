import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from django.conf import settings  # noqa: E402

from core.wsgi import ChunkedBodyMiddleware, CloseConnectionsOnThreadExit  # noqa: E402

# Reads up to one byte over the largest body any view accepts (no view takes file uploads),
# so a longer one is still refused.
application = ChunkedBodyMiddleware(application, limit=settings.API_MAX_BODY_BYTES)
application = CloseConnectionsOnThreadExit(application)

# A web server process publishes to Redis from one background thread (core.publisher).
from core.publisher import publish_in_background  # noqa: E402

publish_in_background(settings.REDIS_PUBLISH_LINGER_SECONDS)

# Everything imported so far lives as long as the process: move it out of the garbage
# collector's reach, so the full collections that requests trigger no longer scan it.
# At 700 reports/s on two cores, p99 latency over four paired runs: 19-67 ms frozen
# against 28-307 ms not.
import gc  # noqa: E402

gc.collect()
gc.freeze()
