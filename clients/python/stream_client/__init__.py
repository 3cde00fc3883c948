"""stream_client: pure-Python client for the STRP stream server.

    from stream_client import StreamClient
    with StreamClient("localhost", 9092) as c:
        c.create_topic("events", 4)
        c.produce("events", b"key", b"value")

See docs/clients.md for the whole API.
"""

from . import errors, protocol
from .client import StreamClient
from .consumer import GroupConsumer
from .errors import *  # noqa: F401,F403  (the exception classes are part of the API)
from .protocol import Assignment, Fetched, Message, Priority, Produced, RequestType

__version__ = "0.1.0"

__all__ = ["StreamClient", "GroupConsumer", "Message", "Produced", "Fetched", "Assignment",
           "Priority", "RequestType", "errors", "protocol"] + errors.__all__
