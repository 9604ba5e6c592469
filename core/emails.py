"""Emails as subject/text/html template trios, rendered by one helper (healthchecks' hc/lib/emails)."""

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string


def send_templated_email(name: str, *, to: Sequence[str], context: dict[str, Any]) -> None:
    """Render templates/emails/<name>-subject.txt, -body.txt and -body.html, and send them."""
    context = {"SITE_URL": settings.SITE_URL, **context}
    subject = " ".join(render_to_string(f"emails/{name}-subject.txt", context).split())
    text = render_to_string(f"emails/{name}-body.txt", context)
    html = render_to_string(f"emails/{name}-body.html", context)
    message = EmailMultiAlternatives(subject=subject, body=text, to=list(to))
    message.attach_alternative(html, "text/html")
    message.send()
