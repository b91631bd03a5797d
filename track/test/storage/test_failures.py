"""What a failed write means, decided by the dialect, code by code, and
the same failure table read by the migration path."""

from __future__ import annotations

import sqlite3

import pymysql
from twisted.trial.unittest import SynchronousTestCase

from track.storage.dsn import parse_dsn
from track.storage.mysql import errors as mysqlerrors
from track.storage.mysql.dialect import MySQLDialect
from track.storage.mysql.errors import ErrorClass
from track.storage.prepare import prepare_database
from track.storage.sqlite import SQLiteDialect
from track.types import Verdict

MYSQL = MySQLDialect(parse_dsn("mysql://u@h/db"))
SQLITE = SQLiteDialect(parse_dsn("sqlite:x.sqlite3"))

OUTAGE_CODES = {
    2002: "Can't connect to local server through socket",
    2003: "Can't connect to MySQL server on '127.0.0.1' (111)",
    2006: "MySQL server has gone away",
    2013: "Lost connection to MySQL server during query",
    2055: "Lost connection to server at 'reading initial communication packet'",
    1053: "Server shutdown in progress",
    1040: "Too many connections",
    1047: "WSREP has not yet prepared node for application use",
    1290: "The MariaDB server is running with the --read-only option so it cannot execute this statement",
    1836: "Running in read-only mode",
    1205: "Lock wait timeout exceeded; try restarting transaction",
    1213: "Deadlock found when trying to get lock; try restarting transaction",
    1021: "Disk full (/var/tmp/#sql_1.MAI); waiting for someone to free some space...",
    1114: "The table 'SessionEvent' is full",
}
ROW_CODES = {
    1048: "Column 'Region' cannot be null",
    1264: "Out of range value for column 'ProfileID' at row 1",
    1265: "Data truncated for column 'Currency' at row 1",
    1292: "Incorrect datetime value: 'x' for column `db`.`SessionEvent`.`Created` at row 1",
    1366: "Incorrect string value: '\\xF0\\x9F\\x98\\x80' for column `db`.`SessionEvent`.`Message` at row 1",
    1406: "Data too long for column 'SessionType' at row 1",
    1644: "no evil sessions",
    3819: "Check constraint 'positive' is violated.",
    4025: "CONSTRAINT `positive` failed for `db`.`SessionEvent`",
    1452: "Cannot add or update a child row: a foreign key constraint fails (`db`.`SessionEvent`, "
          "CONSTRAINT `fk` FOREIGN KEY (`Region`) REFERENCES `Regions` (`Name`))",
}


def mysql_error(code: int, message: str) -> pymysql.err.MySQLError:
    """The exception pymysql raises for an error packet with this code."""
    kind = pymysql.err.error_map.get(code, pymysql.err.InternalError)
    return kind(code, message)


class MySQLVerdictTests(SynchronousTestCase):
    def test_each_outage_code_is_an_outage(self) -> None:
        for code, message in OUTAGE_CODES.items():
            self.assertEqual((code, MYSQL.classify(mysql_error(code, message))), (code, Verdict.OUTAGE))

    def test_each_refused_row_code_is_that_rows_alone(self) -> None:
        for code, message in ROW_CODES.items():
            self.assertEqual((code, MYSQL.classify(mysql_error(code, message))), (code, Verdict.REFUSED))

    def test_a_closed_connection_or_socket_error_is_an_outage(self) -> None:
        for exc in (pymysql.err.InterfaceError(0, ""), ConnectionResetError(104, "reset"),
                    TimeoutError("timed out")):
            self.assertEqual(MYSQL.classify(exc), Verdict.OUTAGE)

    def test_a_galera_node_not_ready_is_an_outage_by_its_message_too(self) -> None:
        exc = pymysql.err.OperationalError(1105, "WSREP has not yet prepared node for application use")
        self.assertEqual(MYSQL.classify(exc), Verdict.OUTAGE)

    def test_anything_else_is_a_bug_never_an_outage(self) -> None:
        for exc in (mysql_error(1064, "You have an error in your SQL syntax"),
                    mysql_error(1054, "Unknown column 'Nope' in 'field list'"),
                    mysql_error(1242, "Subquery returns more than 1 row"),
                    KeyError("Region"), TypeError("unsupported operand")):
            self.assertEqual(MYSQL.classify(exc), Verdict.BUG, exc)

    def test_a_refused_row_names_its_column_where_the_message_does(self) -> None:
        named = {code: MYSQL.refusal(mysql_error(code, message)) for code, message in ROW_CODES.items()}
        self.assertEqual({code: e.column for code, e in named.items() if e is not None}, {
            1048: "Region", 1264: "ProfileID", 1265: "Currency", 1292: "Created", 1366: "Message",
            1406: "SessionType", 1452: "Region", 1644: "", 3819: "", 4025: ""})
        refused = named[1644]
        assert refused is not None  # checked just above
        self.assertEqual(refused.detail, "no evil sessions")


class SQLiteVerdictTests(SynchronousTestCase):
    def test_locked_full_or_failing_files_are_outages(self) -> None:
        for message in ("database is locked", "database or disk is full", "disk I/O error",
                        "attempt to write a readonly database"):
            self.assertEqual(SQLITE.classify(sqlite3.OperationalError(message)), Verdict.OUTAGE, message)

    def test_constraints_are_refused_rows_and_the_rest_bugs(self) -> None:
        self.assertEqual(SQLITE.classify(sqlite3.IntegrityError("CHECK constraint failed: positive")),
                         Verdict.REFUSED)
        self.assertEqual(SQLITE.classify(sqlite3.OperationalError("no such column: Nope")), Verdict.BUG)
        self.assertEqual(SQLITE.classify(sqlite3.ProgrammingError("closed")), Verdict.BUG)


class BothPathsTests(SynchronousTestCase):
    """The write path (classify) and the migration path (prepare_database)
    read one failure table: an error the migration path waits out is an
    outage for the write path, and the only one they treat differently is
    the database as configured not being usable (SETUP)."""

    def start_with(self, error: BaseException) -> str:
        """What prepare_database does when connecting raises `error`."""
        def connect(dialect: MySQLDialect) -> None:
            raise error

        self.patch(MySQLDialect, "connect", connect)
        try:
            result = prepare_database(parse_dsn("mysql://u:secret@h/db"))
        except SystemExit:
            return "stops"
        self.assertIsNone(result)
        return "waits"

    def test_every_code_in_the_table_is_decided_alike(self) -> None:
        errors = [mysql_error(code, message) for code, message in {**OUTAGE_CODES, **ROW_CODES}.items()]
        errors += [mysql_error(code, "x") for code in sorted(mysqlerrors.OUTAGE | mysqlerrors.SETUP
                                                            | set(mysqlerrors.REFUSALS))]
        decided = {ErrorClass.OUTAGE: ("waits", Verdict.OUTAGE), ErrorClass.SETUP: ("stops", Verdict.OUTAGE),
                   ErrorClass.REFUSED: ("stops", Verdict.REFUSED)}
        for error in errors:
            expected = decided[mysqlerrors.error_class(error)]
            self.assertEqual((error.args, self.start_with(error), MYSQL.classify(error)), (error.args, *expected))

    def test_an_interrupted_statement_is_an_outage_not_a_bug(self) -> None:
        """KILL QUERY (an operator's, a query killer's): the INSERT was rolled
        back, so the requests are spooled or get a 503, and a replay keeps
        its events to try again instead of making them dead letters."""
        killed = pymysql.err.OperationalError(1317, "Query execution was interrupted")
        self.assertEqual((self.start_with(killed), MYSQL.classify(killed)), ("waits", Verdict.OUTAGE))

    def test_a_galera_commit_error_1180_by_its_message_on_both_paths(self) -> None:
        galera = pymysql.err.OperationalError(
            1180, "Error while appending streaming replication fragment(provider status: Not connected to "
                  "Primary Component)")
        self.assertEqual((self.start_with(galera), MYSQL.classify(galera)), ("waits", Verdict.OUTAGE))
        other = pymysql.err.OperationalError(1180, "Got error 5 during COMMIT")
        self.assertEqual((self.start_with(other), MYSQL.classify(other)), ("stops", Verdict.BUG))

    def test_a_closed_connection_waits_and_a_wrong_password_stops(self) -> None:
        for error in (pymysql.err.InterfaceError(0, ""), ConnectionRefusedError(111, "refused")):
            self.assertEqual((self.start_with(error), MYSQL.classify(error)), ("waits", Verdict.OUTAGE))
        denied = mysql_error(1045, "Access denied for user 'u'@'h' (using password: YES)")
        self.assertEqual((self.start_with(denied), MYSQL.classify(denied)), ("stops", Verdict.OUTAGE))
