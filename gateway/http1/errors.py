"""The lean client's failures; ``gateway.transport.mapped_errors`` turns them into the model's."""

from __future__ import annotations


class Http1Error(Exception):
    """Base of every failure of the lean upstream client."""


class ConnectFailed(Http1Error):
    """The connection could not be opened (refused, unreachable, DNS, TLS handshake or certificate)."""

    def __init__(self, os_error: OSError) -> None:
        super().__init__(str(os_error))
        self.os_error = os_error


class ConnectionLost(Http1Error):
    """The upstream closed or reset the connection before the reply's head was complete."""


class IncompleteBody(Http1Error):
    """The body ended before its framing said it would (a cut connection, a lying Content-Length,
    an unfinished chunked body)."""


class ResponseMalformed(Http1Error):
    """The upstream's bytes are not an HTTP/1.1 response this client accepts (a parser error, an
    over-long head, an upgrade, a body that does not decode)."""


class RequestBodyFailed(Http1Error):
    """The request body could not be sent: its source failed, or it was not the length declared."""
