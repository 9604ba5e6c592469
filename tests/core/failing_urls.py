"""A URL that fails, for the 500 page's test."""

from django.urls import path


def fail(request):
    raise RuntimeError("a failing view, for the test of the 500 page")


urlpatterns = [path("fail/", fail)]
