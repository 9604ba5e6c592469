from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.selectors import get_membership
from credits.selectors import get_wallet


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("dashboard")
    return redirect("account_login")


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    membership = get_membership(user=request.user)
    context: dict = {"membership": membership}
    if membership is not None:
        context["organization"] = membership.organization
        context["wallet"] = get_wallet(organization=membership.organization)
    return render(request, "accounts/dashboard.html", context)
