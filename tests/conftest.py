"""Shared fixtures: personas, Redis (real in CI, fakeredis on the embedded default), eager Celery."""

import importlib

import pytest
from django.apps import apps as django_apps
from django.conf import settings
from django.db import connection

from config import celery_app
from core.redis import set_redis_client
from credits.selectors import clear_system_account_cache

REFERENCE_DATA_MIGRATIONS = [
    ("billing.migrations.0002_install_plans", "install_plans"),
    ("credits.migrations.0002_install_system_accounts", "install"),
]


def pytest_collection_modifyitems(config, items):
    on_postgres = settings.IS_POSTGRES
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL to a PostgreSQL database)")
    skip_redis = pytest.mark.skip(reason="needs a real Redis (set REDIS_URL)")
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(skip_pg)
        if "redis" in item.keywords and not settings.REDIS_URL:
            item.add_marker(skip_redis)


@pytest.fixture(scope="session", autouse=True)
def _services_reachable(django_db_setup, django_db_blocker):
    """When DATABASE_URL or REDIS_URL is set, they must answer: fail loudly, never skip."""
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    if settings.REDIS_URL:
        import redis

        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2).ping()
        except redis.RedisError as exc:
            pytest.exit(f"REDIS_URL is set but Redis does not answer: {exc}", returncode=3)


@pytest.fixture(autouse=True)
def _eager_celery():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def redis_client(settings):
    """The Redis the publisher writes to: the real one when REDIS_URL is set, else fakeredis."""
    settings.REDIS_PUBLISH_ENABLED = True
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
        client.flushdb()
    else:
        import fakeredis

        client = fakeredis.FakeRedis(decode_responses=True)
    set_redis_client(client)
    yield client
    set_redis_client(None)


@pytest.fixture(autouse=True)
def _clear_caches():
    from django.core.cache import cache

    cache.clear()
    clear_system_account_cache()
    yield
    clear_system_account_cache()


@pytest.fixture(autouse=True)
def _reference_data(request):
    """Plans and system accounts come from data migrations; a transactional test's flush
    removes them, so every test that uses the database gets them (again)."""
    uses_db = request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(request.fixturenames)
    if uses_db:
        request.getfixturevalue("_django_db_helper")
        for module_name, function_name in REFERENCE_DATA_MIGRATIONS:
            getattr(importlib.import_module(module_name), function_name)(django_apps, None)
    yield


@pytest.fixture
def owner(db):
    from tests.factories import CustomerFactory

    return CustomerFactory(email="owner@acme.test", org_slug="acme", role="client_admin")


@pytest.fixture
def organization(owner):
    return owner.membership.organization


@pytest.fixture
def member(organization):
    from tests.factories import CustomerFactory

    return CustomerFactory(email="member@acme.test", org_slug=organization.slug, role="member")


@pytest.fixture
def outsider(db):
    from tests.factories import CustomerFactory

    return CustomerFactory(email="outsider@globex.test", org_slug="globex", role="client_admin")


@pytest.fixture
def staff(db):
    from accounts.models import User

    return User.objects.create_user(email="staff@creditdesk.test", password="staff-pass-123", is_staff=True)


@pytest.fixture
def superuser(db):
    from accounts.models import User

    return User.objects.create_superuser(email="root@creditdesk.test", password="root-pass-123")


@pytest.fixture
def business_admin(staff):
    """Staff in the "Business admins" group, with the group's model permissions (not a superuser)."""
    from django.contrib.auth.models import Group

    from accounts.permissions import BUSINESS_ADMINS, grant_business_admin_permissions

    grant_business_admin_permissions(apps=django_apps)
    staff.groups.add(Group.objects.get(name=BUSINESS_ADMINS))
    return staff
