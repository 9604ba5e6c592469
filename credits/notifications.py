from accounts.models import Membership
from core.emails import send_templated_email
from credits.models import Account


def send_low_credit_alert(*, organization_id: int) -> int:
    """Send the low-credit email to every client admin; returns how many were sent."""
    wallet = Account.objects.select_related("organization").filter(organization_id=organization_id).first()
    if wallet is None or wallet.low_credit_threshold is None:
        return 0
    recipients = list(
        Membership.objects.filter(organization_id=organization_id, role=Membership.Role.CLIENT_ADMIN)
        .select_related("user")
        .values_list("user__email", flat=True)
    )
    context = {"organization": wallet.organization, "wallet": wallet}
    for email in recipients:
        send_templated_email("credits/low_credit", to=[email], context=context)
    return len(recipients)
