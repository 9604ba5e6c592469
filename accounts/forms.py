from allauth.account import app_settings as allauth_settings
from allauth.account.forms import AddEmailForm
from allauth.account.internal.flows.email_verification import send_verification_email_to_address
from allauth.account.models import EmailAddress
from django import forms

from accounts.models import Membership
from credits.services import MAX_AMOUNT


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254, widget=forms.EmailInput(attrs={"placeholder": "colleague@example.com"}))
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


class MfaRequirementForm(forms.Form):
    require_mfa = forms.BooleanField(required=False)


class LowCreditAlertForm(forms.Form):
    """The wallet's low-credit threshold as typed in the portal: a whole number of credits, or empty for off."""

    low_credit_threshold = forms.CharField(
        required=False,
        label="Alert below (credits)",
        widget=forms.NumberInput(attrs={"min": 0, "max": MAX_AMOUNT, "step": 1, "placeholder": "Off"}),
        help_text="Client admins get an email when the balance falls below this. Leave empty to turn alerts off.",
    )

    def clean_low_credit_threshold(self) -> int | None:
        # A CharField, not an IntegerField: IntegerField quietly takes "10.0" as 10.
        text = self.cleaned_data["low_credit_threshold"].strip()
        if not text:
            return None
        if text.startswith("-") and text[1:].isascii() and text[1:].isdigit():
            raise forms.ValidationError("The threshold cannot be negative.")
        if not (text.isascii() and text.isdigit()):
            raise forms.ValidationError(
                "Enter a whole number of credits, such as 500, or leave it empty to turn alerts off."
            )
        # Length first: int() refuses strings of more than 4,300 digits.
        if len(text.lstrip("0")) > len(str(MAX_AMOUNT)) or int(text) > MAX_AMOUNT:
            raise forms.ValidationError(f"The threshold can be at most {MAX_AMOUNT:,} credits.")
        return int(text)


class ChangeEmailForm(AddEmailForm):
    """allauth's change of address, also for a user whose own address is still unverified.

    In change mode allauth takes the user's last unverified address for a change in progress
    and removes it before adding the new one. When that is the user's primary address (they
    signed up and never verified it, which DEBUG's optional verification allows), the user was
    left with an empty email, and the next user to do it hit the unique constraint. Then the
    primary address stays as it is (its own confirmation link still proves only it) and the
    new address is added as a row of its own, which becomes the user's email once confirmed,
    as any change does.
    """

    def save(self, request):
        pending = EmailAddress.objects.get_new(self.user) if allauth_settings.CHANGE_EMAIL else None
        if pending is None or not pending.primary:
            return super().save(request)
        new_address = EmailAddress.objects.create(user=self.user, email=self.cleaned_data["email"].lower())
        send_verification_email_to_address(request, new_address)
        return new_address
