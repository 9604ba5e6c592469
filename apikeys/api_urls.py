from django.urls import path

from apikeys.api import ApiKeyVerifyApi

urlpatterns = [
    path("keys/verify", ApiKeyVerifyApi.as_view(), name="api-keys-verify"),
]
