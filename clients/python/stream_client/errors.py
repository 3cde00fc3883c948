"""Exceptions: one class per server error code, plus client-side failures.

Catch `StreamError` for everything, a specific class (e.g. `TopicAlreadyExists`) for one case,
or look at `.code` (the server's i16 error code; `None` for client-side failures).
"""

from typing import Dict, Optional, Type

__all__ = [
    "StreamError", "ServerError", "UnknownServerError", "InvalidRequest", "TopicNotFound",
    "PartitionNotFound", "InvalidOffset", "TopicAlreadyExists", "GroupNotFound",
    "ConsumerNotFound", "RequestTimeout", "ServerNetworkError", "ProtocolError",
    "BrokerNotAvailable", "RebalanceInProgress", "RequestTooLarge", "IllegalGeneration",
    "Unauthorized", "StorageError", "ClientError", "ConnectionClosed", "ClientTimeout",
    "MalformedResponse", "CrcMismatch", "from_code",
]


class StreamError(Exception):
    """Base class of every error this package raises."""

    code: Optional[int] = None

    def __init__(self, message: str = "", code: Optional[int] = None):
        if code is not None:
            self.code = code
        self.message = message
        super().__init__(self._describe())

    def _describe(self) -> str:
        if self.code is None:
            return self.message
        name = type(self).__name__
        return "%s (code %d): %s" % (name, self.code, self.message) if self.message else \
            "%s (code %d)" % (name, self.code)


class ServerError(StreamError):
    """The server answered with a non-zero error code. Subclasses name the code."""


class UnknownServerError(ServerError):
    code = -1


class InvalidRequest(ServerError):
    code = -2


class TopicNotFound(ServerError):
    code = -3


class PartitionNotFound(ServerError):
    code = -4


class InvalidOffset(ServerError):
    code = -5


class TopicAlreadyExists(ServerError):
    code = -6


class GroupNotFound(ServerError):
    code = -7


class ConsumerNotFound(ServerError):
    code = -8


class RequestTimeout(ServerError):
    code = -9


class ServerNetworkError(ServerError):
    code = -10


class ProtocolError(ServerError):
    """The server refused a frame as malformed (it closes the connection after this)."""

    code = -11


class BrokerNotAvailable(ServerError):
    code = -12


class RebalanceInProgress(ServerError):
    """The group's membership changed: the member must rejoin to learn its new partitions."""

    code = -13


class RequestTooLarge(ServerError):
    code = -14


class IllegalGeneration(ServerError):
    """The request carried a stale generation (e.g. a commit from an evicted member)."""

    code = -15


class Unauthorized(ServerError):
    code = -16


class StorageError(ServerError):
    """The server's storage failed; the request was not applied."""

    code = -17


class ClientError(StreamError):
    """A failure on the client side (no server error code)."""


class ConnectionClosed(ClientError, ConnectionError):
    """The connection is gone (closed by the server, reset, or never opened)."""


class ClientTimeout(ClientError, TimeoutError):
    """No complete answer within the client's timeout (the connection is closed then)."""


class MalformedResponse(ClientError):
    """A response that does not follow the protocol (truncated, bad header, wrong type)."""


class CrcMismatch(MalformedResponse):
    """A fetched message whose CRC-32 does not match its contents."""


_BY_CODE: Dict[int, Type[ServerError]] = {
    cls.code: cls
    for cls in (UnknownServerError, InvalidRequest, TopicNotFound, PartitionNotFound,
                InvalidOffset, TopicAlreadyExists, GroupNotFound, ConsumerNotFound,
                RequestTimeout, ServerNetworkError, ProtocolError, BrokerNotAvailable,
                RebalanceInProgress, RequestTooLarge, IllegalGeneration, Unauthorized,
                StorageError)
}


def from_code(code: int, message: str = "") -> ServerError:
    """The exception for a server error code (a plain ServerError for codes we don't know)."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return ServerError(message, code)
    return cls(message)
