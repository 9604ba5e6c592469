"""Every admin list a staff user can open answers, searched and not: no list is a 500."""

import pytest
from django.contrib import admin
from django.urls import reverse

pytestmark = pytest.mark.django_db

CHANGELISTS = sorted(
    (model._meta.app_label, model._meta.model_name, bool(model_admin.search_fields))
    for model, model_admin in admin.site._registry.items()
)


@pytest.mark.parametrize(
    ("app_label", "model_name", "searchable"), CHANGELISTS, ids=[f"{a}.{m}" for a, m, _ in CHANGELISTS]
)
def test_the_admin_list_opens_and_searches(client, superuser, app_label, model_name, searchable):
    client.force_login(superuser)
    url = reverse(f"admin:{app_label}_{model_name}_changelist")

    assert client.get(url).status_code == 200
    if searchable:
        assert client.get(url, {"q": "demo"}).status_code == 200
