"""twistd plugin: makes `twistd track` build the service from track.run.tap."""

from twisted.application.service import ServiceMaker

track = ServiceMaker(
    "track",
    "track.run.tap",
    "HTTP event collector that stores analytics events in MySQL or SQLite.",
    "track",
)
