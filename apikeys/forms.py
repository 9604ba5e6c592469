from datetime import UTC

from django import forms
from django.utils import timezone

from apikeys.errors import InvalidKeyName
from apikeys.services import NAME_MAX_LENGTH, valid_key_name


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX_LENGTH, help_text="To tell your keys apart, e.g. “production server”.")
    scopes = forms.CharField(
        required=False,
        initial="query",
        max_length=500,
        help_text=(
            "Comma-separated; names of a-z, 0-9, ':', '_' and '-'. Empty: query (usage and billing reads). "
            "Add billing to let the key price and buy credits and change or cancel the plan."
        ),
    )
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires at (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        help_text="Optional. The key stops working at this time.",
    )

    def clean_name(self) -> str:
        # The service's rule, shown on the field (the service checks it again).
        try:
            return valid_key_name(self.cleaned_data["name"])
        except InvalidKeyName as exc:
            raise forms.ValidationError(exc.message) from exc

    def clean_expires_at(self):
        value = self.cleaned_data.get("expires_at")
        if value is None:
            return None
        if timezone.is_naive(value):
            value = value.replace(tzinfo=UTC)
        if value <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return value
