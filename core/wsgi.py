"""WSGI middleware for the production server (config.wsgi).

- ChunkedBodyMiddleware: a chunked request body, which Django would read as empty, given a length.
- CloseConnectionsOnThreadExit: a server thread's database connections closed when it ends.
"""

import io
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from django.db import connections

logger = logging.getLogger(__name__)


class ChunkedBodyMiddleware:
    """Read a `Transfer-Encoding: chunked` body up front and give it a Content-Length.

    Django reads only CONTENT_LENGTH bytes of a body, so a chunked request (no length) looks
    empty to it: a valid usage report was answered "the body is empty". The server (granian)
    decodes the chunks and marks the stream terminated (`wsgi.input_terminated`); this
    reads at most `limit` + 1 bytes of it, so a body over the limit keeps a length over the
    limit and is refused as any other (413 under /api/, core.middleware.ApiEnvelopeMiddleware).
    """

    def __init__(self, application: Callable[..., Iterable[bytes]], *, limit: int) -> None:
        self.application = application
        self.limit = limit

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if (
            not environ.get("CONTENT_LENGTH")
            and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
            and environ.get("wsgi.input_terminated")
        ):
            body = environ["wsgi.input"].read(self.limit + 1)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.application(environ, start_response)


class CloseConnectionsOnThreadExit:
    """Close a server thread's database connections when the thread ends.

    granian retires a thread that has been idle for WEB_THREADS_IDLE_TIMEOUT seconds and
    starts a new one for the next burst. Django keeps each thread's persistent connection
    in a thread-local, and when the thread ends its DatabaseWrapper, held in reference
    cycles, is freed only by a full garbage collection, which may not come for hours.
    Found from outside: a worker of four threads gained three PostgreSQL connections with
    every burst after an idle pause and kept them all, until PostgreSQL refused clients.
    Each thread now holds a _ConnectionCloser in a thread-local of its own: it has no
    cycles, so it is freed as the thread ends, and closes that thread's connections then.
    """

    def __init__(self, application: Callable[..., Iterable[bytes]]) -> None:
        self.application = application
        self.local = threading.local()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not hasattr(self.local, "closer"):
            self.local.closer = _ConnectionCloser()
        return self.application(environ, start_response)


class _ConnectionCloser:
    def __init__(self) -> None:
        self.wrappers = [connections[alias] for alias in connections]  # this thread's own

    def __del__(self) -> None:
        for wrapper in self.wrappers:
            try:
                wrapper.close()
            except Exception:  # the thread is ending: nobody to tell but the log
                logger.warning("could not close a finished thread's database connection", exc_info=True)
