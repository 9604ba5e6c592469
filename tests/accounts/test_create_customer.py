"""create_customer: a valid, new email always succeeds; one taken in any letter case fails cleanly."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from accounts import services
from accounts.errors import EmailTaken
from accounts.models import Membership, Organization, User
from credits.models import Account


def _take_the_slug_just_after_the_check(monkeypatch, times: int = 1) -> list[str]:
    """Another sign-up inserts each of the next `times` slugs the service picks right after
    it checked them: the check-then-insert race, made deterministic."""
    real, taken = services.unique_org_slug, []

    def unique_org_slug(base: str) -> str:
        slug = real(base)
        if len(taken) < times:
            services.create_organization(name=f"Concurrent {slug}", slug=slug)
            taken.append(slug)
        return slug

    monkeypatch.setattr(services, "unique_org_slug", unique_org_slug)
    return taken


def test_a_personal_org_slug_taken_between_the_check_and_the_insert_gets_the_next_free_one(db, monkeypatch):
    services.create_customer(email="samelocal@a.com")
    taken = _take_the_slug_just_after_the_check(monkeypatch, times=2)

    user = services.create_customer(email="samelocal@b.com")

    slug = user.membership.organization.slug
    assert len(taken) == 2 and slug not in taken and slug.startswith("samelocal-")
    assert user.membership.role == Membership.Role.CLIENT_ADMIN
    assert Account.objects.filter(organization__slug=slug).exists()


def test_the_command_prints_the_ids_when_the_slug_is_taken_meanwhile(db, monkeypatch, capsys):
    _take_the_slug_just_after_the_check(monkeypatch)
    call_command("create_customer", "samelocal@b.com")
    assert '"userId"' in capsys.readouterr().out.strip().splitlines()[-1]
    assert User.objects.filter(email="samelocal@b.com").exists()


def test_a_new_org_slug_created_by_someone_else_meanwhile_is_joined(db, monkeypatch):
    real = Organization.objects.filter

    def filter_missing_it_once(*args, **kwargs):
        # The lookup misses the organization a concurrent run is creating...
        if kwargs == {"slug": "newco"} and not Organization.objects.all().exists():
            services.create_organization(name="newco", slug="newco")  # ...which it then inserts first
            return real(pk=None)
        return real(*args, **kwargs)

    monkeypatch.setattr(Organization.objects, "filter", filter_missing_it_once)
    user = services.create_customer(email="second@newco.test", org_slug="newco")
    assert (user.membership.organization.slug, user.membership.role) == ("newco", Membership.Role.MEMBER)
    assert Organization.objects.count() == 1


def test_a_unique_violation_on_the_email_is_the_same_clear_error_and_changes_nothing(db, monkeypatch):
    services.create_customer(email="Taken@example.com", org_slug="first")
    users, orgs = User.objects.count(), Organization.objects.count()
    # What the check cannot see (a concurrent run's insert, or two addresses only the
    # database's lower() calls equal) reaches the unique index: the check is skipped here.
    monkeypatch.setattr(services, "normalize_new_email", services.valid_email_address)

    with pytest.raises(EmailTaken, match="already exists"):
        services.create_customer(email="taken@example.com")
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_customer", "TAKEN@example.com", "--org", "brand-new")

    assert (User.objects.count(), Organization.objects.count()) == (users, orgs)
    assert not Organization.objects.filter(slug="brand-new").exists()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("first", "second"),
    [("\u0130stanbul@example.com", "istanbul@example.com"), ("istanbul@example.com", "\u0130stanbul@example.com")],
)
def test_an_email_equal_as_postgresql_lowers_it_is_taken(db, first, second):
    # PostgreSQL lowers the dotted capital I to "i"; Python to "i" and a combining dot.
    services.create_customer(email=first)
    users, orgs = User.objects.count(), Organization.objects.count()
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_customer", second)
    with pytest.raises(EmailTaken):
        services.create_customer(email=second, org_slug="brand-new")
    assert (User.objects.count(), Organization.objects.count()) == (users, orgs)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_customers_sharing_a_local_part_all_get_an_organization(monkeypatch):
    """Real threads on their own connections; a barrier holds every run between its slug
    check and its insert, so all of them pick "samelocal" and all but one collide."""
    emails = [f"samelocal@{domain}.com" for domain in "abcdef"]
    barrier, first_pick = threading.Barrier(len(emails), timeout=20), threading.local()
    real = services.unique_org_slug

    def unique_org_slug(base: str) -> str:
        slug = real(base)
        if not getattr(first_pick, "done", False):
            first_pick.done = True
            barrier.wait()
        return slug

    monkeypatch.setattr(services, "unique_org_slug", unique_org_slug)

    def create(email: str) -> str:
        try:
            return services.create_customer(email=email).membership.organization.slug
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(emails)) as pool:
        slugs = list(pool.map(create, emails))

    assert "samelocal" in slugs and len(set(slugs)) == len(emails)
    assert User.objects.filter(email__startswith="samelocal@").count() == len(emails)
    assert Account.objects.filter(organization__slug__in=slugs).count() == len(emails)
