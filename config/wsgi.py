import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# A web server process publishes to Redis from one background thread (core.publisher).
from django.conf import settings  # noqa: E402

from core.publisher import publish_in_background  # noqa: E402

publish_in_background(settings.REDIS_PUBLISH_LINGER_SECONDS)
