from django import forms
from django.conf import settings

from billing.models import CreditPackage, Provider
from billing.services import MAX_DISPUTE_REASON_LENGTH


class QuoteForm(forms.Form):
    """Price a pack or a custom amount (the page does it live with JavaScript; this is the plain-HTML path)."""

    package = forms.ModelChoiceField(queryset=CreditPackage.objects.filter(active=True), required=False)
    credits = forms.IntegerField(required=False, min_value=1)
    promo_code = forms.CharField(required=False, max_length=40, label="Promotion code")

    def clean(self):
        data = super().clean()
        if not data.get("package") and not data.get("credits") and "credits" not in self.errors:
            raise forms.ValidationError("Choose a pack or enter a number of credits.")
        return data

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        low, high = settings.BILLING_MIN_CUSTOM_CREDITS, settings.BILLING_MAX_CUSTOM_CREDITS
        credits = self.fields["credits"]
        credits.widget.attrs.update({"min": low, "max": high, "step": 1})
        # The service refuses amounts outside the range with this message (billing.services);
        # a negative, a fraction or a word gets the same, not Django's "greater than or equal to 1".
        message = f"Buy from {low:,} to {high:,} credits."
        credits.error_messages.update({"invalid": f"Enter a whole number of credits. {message}", "min_value": message})


class PayForm(forms.Form):
    quote_id = forms.UUIDField(widget=forms.HiddenInput)
    provider = forms.ChoiceField(choices=Provider.choices, widget=forms.RadioSelect)


class PlanChangeForm(forms.Form):
    plan = forms.SlugField(max_length=32)
    provider = forms.ChoiceField(choices=[("", "default"), *Provider.choices], required=False)


class DisputeForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=MAX_DISPUTE_REASON_LENGTH,
        min_length=10,
        help_text="What is wrong with this charge? Our staff will look at it.",
    )
