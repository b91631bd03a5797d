"""The failure table: what a MySQL/MariaDB error means, by its code.

One table, read by both paths that meet a database error:
- the write path (a batch's INSERT, MySQLDialect.classify): an outage
  spools (or answers 503), a refused row is a 400 for its request alone,
  anything else a 500;
- the migration path (start-up, and the database appearing after it:
  track.storage.prepare): an outage lets track start and wait for it (and
  start-up tries the DSN's next host), anything else stops start-up with
  one line.

The two differ in one class only, SETUP: a wrong password or an unknown
database, table or host is a mistake to fix before starting, but while
running it means the database was taken away, an outage like any other.
"""

from __future__ import annotations

import enum

import pymysql

from track.types import Verdict


class ErrorClass(enum.Enum):
    """What a database error says about the database."""

    REFUSED = "this row cannot be stored"
    OUTAGE = "the database cannot take writes now"
    SETUP = "the database, as configured, cannot be used"
    BUG = "a failure nobody expected"


# The write path's verdict for each class.
WHILE_RUNNING = {
    ErrorClass.REFUSED: Verdict.REFUSED,
    ErrorClass.OUTAGE: Verdict.OUTAGE,
    ErrorClass.SETUP: Verdict.OUTAGE,  # taken away while running
    ErrorClass.BUG: Verdict.BUG,
}
# Classes the migration path waits out (track starts, acknowledging from the
# spool); any other class stops start-up with one line.
WAITED_AT_START = frozenset({ErrorClass.OUTAGE})

# This row cannot be stored (the client's value, a trigger's SIGNAL, a
# constraint): the text is what the client reads when the message names a column.
REFUSALS = {
    1048: "must not be null",
    1062: "duplicates an existing event",
    1216: "violates a database foreign key",
    1263: "must not be null",
    1264: "is out of range for the database column",
    1265: "does not fit the database column",
    1292: "is not a valid value for the database column",
    1364: "is required by the database",
    1366: "contains characters the database column cannot store",
    1367: "is not a valid value for the database column",
    1406: "is too long for the database column",
    1452: "violates a database foreign key",
    1644: "was refused by the database",  # SIGNAL in a trigger
    3819: "violates a database constraint",  # CHECK (MySQL)
    4025: "violates a database constraint",  # CHECK (MariaDB)
}
# Errors whose message names the offending column.
NAMES_COLUMN = frozenset({1048, 1263, 1264, 1265, 1292, 1364, 1366, 1367, 1406, 1216, 1452})
# The database cannot take writes now, wherever it is met.
OUTAGE = frozenset({
    1021, 1114,  # disk full, table full
    1040, 1203,  # too many connections (server-wide, per user)
    1047,  # WSREP has not yet prepared node for application use (Galera)
    1053,  # server shutdown in progress
    1152, 1153, 1158, 1159, 1160, 1161, 1184,  # network errors seen by the server
    1205, 1213,  # lock wait timeout, deadlock: after the retries
    1290, 1836,  # read-only (--read-only, a replica)
    1317,  # query execution was interrupted (KILL QUERY): rolled back, safe to try again
    1927,  # connection killed
    2002, 2003, 2006, 2013, 2014, 2045, 2055,  # client: cannot connect, gone, lost
    4031,  # disconnected by the server for inactivity
})
# Access denied, unknown database, table or host: fatal at start, an outage later.
SETUP = frozenset({
    1044, 1045, 1142,  # access denied (database, user, table)
    1049, 1146,  # unknown database, table
    2005,  # unknown server host
})
# What a Galera node says, whatever the code (1047; 1180, an error during
# COMMIT), when it is not part of the primary component: an outage of that node.
GALERA_NOT_PRIMARY = ("WSREP has not yet prepared node", "Not connected to Primary Component")
# Errors after which the same transaction may simply be tried again.
RETRYABLE = frozenset({1205, 1213})  # lock wait timeout, deadlock
# The connection is gone (server restarted, killed it, or timed it out).
GONE = frozenset({1927, 2006, 2013, 2014, 2045, 2055, 4031})


def mysql_code(exc: BaseException) -> int | None:
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def error_class(exc: BaseException) -> ErrorClass:
    """The class of any exception met talking to MySQL: the one decision."""
    code = mysql_code(exc)
    if code in REFUSALS:
        return ErrorClass.REFUSED
    if code in OUTAGE or any(sign in str(exc) for sign in GALERA_NOT_PRIMARY):
        return ErrorClass.OUTAGE
    if code in SETUP:
        return ErrorClass.SETUP
    if isinstance(exc, (pymysql.err.InterfaceError, ConnectionError, TimeoutError)):
        return ErrorClass.OUTAGE  # the connection is closed or the socket failed
    return ErrorClass.BUG


def while_running(exc: BaseException) -> Verdict:
    """The write path's verdict."""
    return WHILE_RUNNING[error_class(exc)]


def waited_at_start(exc: BaseException) -> bool:
    """The migration path's: start and wait for the database (and try the
    next host), rather than stop."""
    return error_class(exc) in WAITED_AT_START
