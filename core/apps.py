import logging

from django.apps import AppConfig
from django.conf import settings

logger = logging.getLogger("creditdesk")


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from core.admin import harden_admins

        harden_admins()  # django.contrib.admin's ready() registered every admin first
        if not settings.REDIS_PUBLISH_ENABLED and not settings.TESTING:
            logger.info(
                "Redis publishing is off (REDIS_URL is not set): the hashes the public query API reads are not written."
            )
