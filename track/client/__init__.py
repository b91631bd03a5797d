"""A Python client for track that keeps the collector's promise to the end:
every event it returns a MessageID for is stored exactly once, or reported.

    from track.client import Client
    client = Client("http://collector.example:8080")
    client.track("user", {"ProfileID": 42, "Region": "eu"})  # -> its MessageID

`track()` checks the event against the collector's field rules (from its
OpenAPI document; see `track.client.rules`), stamps its `Timestamp` and
queues it; background threads send the queue through the batch endpoint and
retry outages (transport errors, 408, 429, 5xx) with backoff, always with the
same MessageIDs, which the collector deduplicates.  Standard library only,
and nothing from the server's packages: the package can be vendored as is
(copy `track/__init__.py` and `track/client/`).

`python -m track.client import URL FILE...` imports NDJSON files (see
`track.client.importer`).
"""

from track.client.delivery import MAX_BATCH_BYTES, ErrorHandler
from track.client.events import InvalidEventError, JSONNumber
from track.client.queue import MemoryQueue, QueueInUse, SQLiteQueue
from track.client.sending import MAX_BATCH, Client, QueueFull
from track.client.transport import (
    BACKOFF_MAX,
    BACKOFF_MIN,
    RETRY_AFTER_MIN,
    Endpoint,
    backoff,
    retry_after,
    retry_delay,
)

BATCH_PATH = Endpoint.BATCH_PATH

__all__ = [
    "BACKOFF_MAX", "BACKOFF_MIN", "BATCH_PATH", "MAX_BATCH", "MAX_BATCH_BYTES", "RETRY_AFTER_MIN", "Client",
    "ErrorHandler", "InvalidEventError", "JSONNumber", "MemoryQueue", "QueueFull", "QueueInUse", "SQLiteQueue",
    "backoff", "retry_after", "retry_delay",
]
