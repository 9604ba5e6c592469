import pytest

from billing.demo import seed_demo_billing
from billing.models import Promotion, Purchase
from credits.selectors import get_balance


@pytest.mark.django_db
def test_the_demo_buys_a_pack_through_the_sandbox_once(sandbox, organization):
    seed_demo_billing(organization=organization)
    seed_demo_billing(organization=organization)

    purchase = Purchase.objects.get(organization=organization)
    assert (purchase.provider, purchase.status, purchase.credits) == ("sandbox", "completed", 100)
    assert get_balance(organization_id=organization.pk) == 100
    assert Promotion.objects.filter(code="DEMO10").count() == 1


@pytest.mark.django_db
def test_the_demo_buys_nothing_without_the_sandbox(settings, organization):
    settings.DEBUG = False
    seed_demo_billing(organization=organization)
    assert not Purchase.objects.exists()
