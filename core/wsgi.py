"""WSGI middleware: a chunked request body, which Django would read as empty, given a length."""

import io
from collections.abc import Callable, Iterable
from typing import Any


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
