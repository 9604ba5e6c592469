"""The batch's bulk reads: the prepared statements (PostgreSQL) read what the ORM reads."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apikeys.services import issue_api_key, revoke_api_key
from billing.services import change_plan
from tests.factories import CustomerFactory
from usage import selectors


@pytest.fixture
def people(db):
    on_free = CustomerFactory(email="free@selectors.test", org_slug="sel-free")
    on_pro = CustomerFactory(email="pro@selectors.test", org_slug="sel-pro")
    teammate = CustomerFactory(email="mate@selectors.test", org_slug="sel-pro")
    change_plan(organization=on_pro.membership.organization, plan_code="professional")
    live, _ = issue_api_key(organization=on_free.membership.organization, created_by=on_free, name="live")
    revoked, _ = issue_api_key(organization=on_pro.membership.organization, created_by=on_pro, name="old")
    revoke_api_key(api_key=revoked)
    expiring, _ = issue_api_key(
        organization=on_pro.membership.organization,
        created_by=on_pro,
        name="expiring",
        expires_at=timezone.now() + timedelta(days=1),
    )
    return {"users": [on_free.pk, on_pro.pk, teammate.pk, 10**9], "keys": [live.pk, revoked.pk, expiring.pk, 10**9]}


def _both_paths(monkeypatch, read, **kwargs):
    prepared = read(**kwargs)
    monkeypatch.setattr(connection, "vendor", "orm")
    portable = read(**kwargs)
    monkeypatch.undo()
    return prepared, portable


@pytest.mark.postgres
def test_the_prepared_org_read_matches_the_orm(monkeypatch, people):
    prepared, portable = _both_paths(monkeypatch, selectors.get_org_contexts, user_ids=people["users"])

    assert prepared == portable
    assert len(prepared) == 3  # the unknown user is left out
    assert {context.plan.code for context in prepared.values()} == {"free", "professional"}
    assert all(context.wallet_id is not None and context.wallet_status == "active" for context in prepared.values())


@pytest.mark.postgres
def test_the_prepared_key_read_matches_the_orm(monkeypatch, people):
    prepared, portable = _both_paths(monkeypatch, selectors.get_key_states, api_key_ids=people["keys"])

    assert prepared == portable
    assert sorted(state.status for state in prepared.values()) == ["active", "active", "revoked"]
    assert sum(state.expires_at is not None for state in prepared.values()) == 1


def test_no_ids_read_nothing(db, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert selectors.get_org_contexts(user_ids=[]) == {}
        assert selectors.get_key_states(api_key_ids=[]) == {}
