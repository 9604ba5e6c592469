"""The full key exists only in the answer that creates it: not in the database, Redis, logs or the admin."""

import copy
import logging
import logging.config
from io import StringIO

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse

from apikeys.models import ApiKey
from apikeys.services import issue_api_key, revoke_api_key
from core import publisher


def every_text_in_the_database() -> str:
    chunks = []
    for model in apps.get_models(include_auto_created=True):
        for row in model._base_manager.values_list():
            chunks.append(repr(row))
    return "\n".join(chunks)


def every_text_in_redis(client) -> str:
    chunks = []
    for name in client.scan_iter(count=1000):
        chunks.append(str(name))
        kind = client.type(name)
        if kind == "hash":
            chunks.append(repr(client.hgetall(name)))
        elif kind == "string":
            chunks.append(str(client.get(name)))
    return "\n".join(chunks)


def test_no_plaintext_key_in_the_database_redis_logs_or_admin(
    client, owner, member, organization, superuser, redis_client, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)
    organization.plan.max_api_keys = None
    organization.plan.save()
    raws = []
    with django_capture_on_commit_callbacks(execute=True):
        api_key, raw = issue_api_key(organization=organization, created_by=owner, name="service")
        raws.append(raw)
        out = StringIO()
        call_command("create_api_key", member.email, stdout=out)
        raws.append(out.getvalue().split('"key": "')[1].split('"')[0])
        client.force_login(member)
        raws.append(client.post(reverse("apikeys:create"), {"name": "portal"}).context["raw_key"])
    # The keys are used and changed: authentication, verification, revocation, resync, reconcile.
    from apikeys.services import create_service_account

    _, token = create_service_account(name="query-api")
    client.logout()
    for raw in raws:
        client.post(
            "/api/keys/verify", {"key": raw}, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}"
        )
        client.get("/api/keys/verify", HTTP_AUTHORIZATION=f"Bearer {raw}")
    with django_capture_on_commit_callbacks(execute=True):
        revoke_api_key(api_key=api_key, actor=owner)
    publisher.resync()
    publisher.reconcile()

    client.force_login(superuser)
    admin_pages = [
        client.get(reverse("admin:apikeys_apikey_changelist")).content.decode(),
        client.get(reverse("admin:core_auditevent_changelist")).content.decode()
        if apps.is_installed("core") and _registered("core", "auditevent")
        else "",
    ]
    admin_pages += [
        client.get(reverse("admin:apikeys_apikey_change", args=[key.pk])).content.decode()
        for key in ApiKey.objects.all()
    ]

    database = every_text_in_the_database()
    redis_text = every_text_in_redis(redis_client)
    assert len(raws) == 3 and ApiKey.objects.count() == 3
    for raw in raws:
        secret = raw[len("cdk_live_") :]
        for where, text in [
            ("database", database),
            ("redis", redis_text),
            ("logs", caplog.text),
            *(("admin", page) for page in admin_pages),
        ]:
            assert secret not in text, f"the key's secret appears in the {where}"
            assert secret[3:20] not in text, f"part of the key's secret appears in the {where}"
    # The scan did see what it should: the hashes and the prefixes.
    assert api_key.key_hash in redis_text and api_key.prefix in database


def _registered(app_label: str, model_name: str) -> bool:
    from django.contrib import admin

    return any(m._meta.app_label == app_label and m._meta.model_name == model_name for m in admin.site._registry)


@pytest.mark.parametrize("formatter", ["plain", "json"])
def test_a_key_a_client_put_in_a_url_is_redacted_in_the_log_output(client, owner, organization, formatter):
    _, raw = issue_api_key(organization=organization, created_by=owner, name="in a url")
    records = []
    capture = logging.Handler()
    capture.emit = records.append
    logging.getLogger("django.request").addHandler(capture)
    try:
        assert client.get(f"/api/usage?key={raw}").status_code in (401, 403)
    finally:
        logging.getLogger("django.request").removeHandler(capture)
    config = copy.deepcopy(settings.LOGGING["formatters"][formatter])  # configure_formatter pops from it
    output = logging.config.DictConfigurator({"version": 1}).configure_formatter(config)

    # Django's record carries the request, with its query string; the JSON line prints it.
    assert records and raw in repr(records[0].__dict__)
    lines = [output.format(record) for record in records]
    assert not any(raw[9:30] in line for line in lines)
    if formatter == "json":
        assert "cdk_live_[redacted]" in lines[0]
