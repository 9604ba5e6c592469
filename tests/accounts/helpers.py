import re

from django.core import mail

PASSWORD = "correct-horse-battery-9"


def links_in_last_email() -> list[str]:
    return re.findall(r"https?://[^\s<>\"]+", mail.outbox[-1].body)


def log_in(client, email: str, password: str = PASSWORD):
    return client.post("/accounts/login/", {"login": email, "password": password})


def reauthenticate(client, password: str = PASSWORD):
    return client.post("/accounts/reauthenticate/", {"password": password})
