"""twistd plugin: makes `twistd track` build the service from track.tap."""

from twisted.application.service import ServiceMaker

track = ServiceMaker(
    "track",
    "track.tap",
    "HTTP event collector that stores analytics events in MySQL or SQLite.",
    "track",
)
