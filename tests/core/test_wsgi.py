"""WSGI middleware of the production server (core.wsgi).

On PostgreSQL: connections there persist (CONN_MAX_AGE=None); SQLite's close per request,
and Django never closes the in-memory test database.
"""

import threading

import pytest
from django.db import connections

from core.wsgi import CloseConnectionsOnThreadExit


def _app_using_the_database(environ, start_response):
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
    start_response("200 OK", [])
    return [b"ok"]


def _serve_one_request_in_a_thread(app) -> object:
    """Serve one request in a thread that then ends, as granian's idle threads do; its connection wrapper."""
    used = []

    def serve():
        app({}, lambda status, headers: None)
        used.append(connections["default"])

    thread = threading.Thread(target=serve)
    thread.start()
    thread.join()
    return used[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_thread_s_database_connection_is_closed_when_the_thread_ends():
    wrapper = _serve_one_request_in_a_thread(CloseConnectionsOnThreadExit(_app_using_the_database))

    assert wrapper.connection is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_without_it_the_connection_of_an_ended_thread_stays_open():
    """Why the middleware exists: nothing else closes it (the wrapper waits for a full garbage collection)."""
    wrapper = _serve_one_request_in_a_thread(_app_using_the_database)
    try:
        assert wrapper.connection is not None
    finally:
        wrapper.connection.close()
