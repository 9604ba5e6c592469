from django.urls import path

from apikeys import views

app_name = "apikeys"

urlpatterns = [
    path("", views.api_key_list, name="list"),
    path("new/", views.api_key_create, name="create"),
    path("<int:api_key_id>/revoke/", views.api_key_revoke, name="revoke"),
]
