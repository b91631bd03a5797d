"""The durable spool: acknowledged events kept on local disk while the
database is down, replayed in order when it is back, and the dead letters
for the few the database refuses then."""

from track.spool.deadletters import DeadLetters
from track.spool.records import KindGone, RecordError, Segment, decode, encode, parse_segment
from track.spool.segments import DEFAULT_MAX_BYTES, Spool, SpoolBroken, SpoolFull

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DeadLetters",
    "KindGone",
    "RecordError",
    "Segment",
    "Spool",
    "SpoolBroken",
    "SpoolFull",
    "decode",
    "encode",
    "parse_segment",
]
