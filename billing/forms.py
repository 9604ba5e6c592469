from django import forms
from django.conf import settings

from billing.models import CreditPackage, Provider


class QuoteForm(forms.Form):
    """Price a pack or a custom amount (the page does it live with JavaScript; this is the plain-HTML path)."""

    package = forms.ModelChoiceField(queryset=CreditPackage.objects.filter(active=True), required=False)
    credits = forms.IntegerField(required=False, min_value=1)
    promo_code = forms.CharField(required=False, max_length=40, label="Promotion code")

    def clean(self):
        data = super().clean()
        if not data.get("package") and not data.get("credits"):
            raise forms.ValidationError("Choose a pack or enter a number of credits.")
        return data

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["credits"].widget.attrs.update(
            {"min": settings.BILLING_MIN_CUSTOM_CREDITS, "max": settings.BILLING_MAX_CUSTOM_CREDITS, "step": 1}
        )


class PayForm(forms.Form):
    quote_id = forms.UUIDField(widget=forms.HiddenInput)
    provider = forms.ChoiceField(choices=Provider.choices, widget=forms.RadioSelect)


class PlanChangeForm(forms.Form):
    plan = forms.SlugField(max_length=32)
    provider = forms.ChoiceField(choices=[("", "default"), *Provider.choices], required=False)


class DisputeForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
        min_length=10,
        help_text="What is wrong with this charge? Our staff will look at it.",
    )
