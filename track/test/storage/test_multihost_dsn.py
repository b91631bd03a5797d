"""Multi-host DSNs and the connection timeouts a DSN's query sets."""

from __future__ import annotations

import os

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from track.run.options import Options
from track.storage.dsn import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_WRITE_TIMEOUT,
    DSNError,
    Timeouts,
    parse_dsn,
)
from track.storage.mysql.dialect import MySQLDialect
from track.test.process import refused_at_start


class MultiHostTests(SynchronousTestCase):
    def test_hosts_in_order_of_preference(self) -> None:
        dsn = parse_dsn("mysql://app:s3cret@db1:3306,db2:3307,db3/track?charset=utf8mb4")
        self.assertEqual(dsn.hosts, (("db1", 3306), ("db2", 3307), ("db3", 3306)))
        self.assertEqual((dsn.host, dsn.port, dsn.user, dsn.password, dsn.database),
                         ("db1", 3306, "app", "s3cret", "track"))

    def test_mariadb_scheme_and_ipv6(self) -> None:
        dsn = parse_dsn("mariadb://root@[::1]:3306,127.0.0.1:3307/x")
        self.assertEqual(dsn.hosts, (("::1", 3306), ("127.0.0.1", 3307)))

    def test_go_form_lists_hosts_too(self) -> None:
        dsn = parse_dsn("u:p@tcp(10.0.0.1:3306,10.0.0.2:3306)/track")
        self.assertEqual(dsn.hosts, (("10.0.0.1", 3306), ("10.0.0.2", 3306)))

    def test_one_host_is_as_before(self) -> None:
        dsn = parse_dsn("mysql://u:p@db:3306/track")
        self.assertEqual(dsn.hosts, (("db", 3306),))
        self.assertEqual(dsn.redacted(), "mysql://u:***@db:3306/track")

    def test_a_password_with_a_comma_is_still_one_host(self) -> None:
        dsn = parse_dsn("mysql://u:p,q@db:3306/track")
        self.assertEqual((dsn.password, dsn.hosts), ("p,q", (("db", 3306),)))

    def test_redacted_names_every_host_never_the_password(self) -> None:
        dsn = parse_dsn("mysql://app:s3cret@db1:3306,db2:3306/track")
        self.assertEqual(dsn.redacted(), "mysql://app:***@db1:3306,db2:3306/track")
        self.assertNotIn("s3cret", repr(dsn))

    def test_the_same_user_and_database_written_per_host_is_one_dsn(self) -> None:
        dsn = parse_dsn("mysql://app:pw@db1:3306/track,mysql://app:pw@db2:3306/track")
        self.assertEqual((dsn.hosts, dsn.user, dsn.database), ((("db1", 3306), ("db2", 3306)), "app", "track"))

    def test_hosts_with_different_users_are_refused(self) -> None:
        with self.assertRaises(DSNError) as caught:
            parse_dsn("mysql://alice:pw@db1:3306,bob:pw@db2:3306/track")
        message = str(caught.exception)
        self.assertIn("different users: ", message)
        self.assertNotIn("bob", message)  # a "user" may be the tail of a password: never shown
        self.assertNotIn("pw", message.replace("mysql://user:pass", ""))

    def test_a_password_with_at_and_comma_is_never_shown_and_parses_percent_encoded(self) -> None:
        with self.assertRaises(DSNError) as caught:
            parse_dsn("mysql://app:pa@ss,Secr3t@db1:3306/events")
        self.assertNotIn("Secr3t", str(caught.exception))
        self.assertIn("%40, %2C", str(caught.exception))
        dsn = parse_dsn("mysql://app:pa%40ss%2CSecr3t@db1:3306,db2:3306/events")
        self.assertEqual((dsn.password, dsn.hosts), ("pa@ss,Secr3t", (("db1", 3306), ("db2", 3306))))

    def test_an_empty_host_in_a_list_is_refused(self) -> None:
        for text in ("mysql://u:p@h1:3306,,h2/db", "u:p@tcp(h1:3306,)/db"):
            with self.assertRaises(DSNError) as caught:
                parse_dsn(text)
            self.assertIn("empty host", str(caught.exception))

    def test_hosts_with_different_databases_are_refused(self) -> None:
        for text in ("mysql://app@db1:3306/one,db2:3306/two",
                     "mysql://app@db1:3306/one,mysql://app@db2:3306/two"):
            with self.assertRaises(DSNError) as caught:
                parse_dsn(text)
            self.assertIn("different databases ['one', 'two']", str(caught.exception))

    def test_different_passwords_are_refused_without_showing_them(self) -> None:
        with self.assertRaises(DSNError) as caught:
            parse_dsn("mysql://app:first@db1:3306/t,mysql://app:second@db2:3306/t")
        self.assertIn("different passwords", str(caught.exception))
        self.assertNotIn("first", str(caught.exception))
        self.assertNotIn("second", str(caught.exception))

    def test_refused_at_start_as_a_usage_error(self) -> None:
        with self.assertRaises(usage.UsageError) as caught:
            Options().parseOptions(["--dsn", "mysql://alice@db1:3306,bob@db2:3306/track"])
        self.assertTrue(str(caught.exception).startswith("--dsn: the hosts of this DSN have different users"))

    def test_a_unix_socket_names_one_server(self) -> None:
        self.assertRaises(DSNError, parse_dsn, "mysql://u@db1,db2/track?unix_socket=/run/mysqld.sock")

    def test_a_bad_port_in_the_list_is_refused(self) -> None:
        self.assertRaises(DSNError, parse_dsn, "mysql://u@db1:3306,db2:99999/track")


class TimeoutTests(SynchronousTestCase):
    def test_defaults_are_a_few_seconds(self) -> None:
        self.assertEqual(parse_dsn("mysql://u@db/t").timeouts,
                         Timeouts(DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, DEFAULT_WRITE_TIMEOUT))
        self.assertTrue(all(0 < t <= 10 for t in (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT,
                                                  DEFAULT_WRITE_TIMEOUT)))

    def test_from_the_query(self) -> None:
        dsn = parse_dsn("mysql://u@db1,db2/t?connect_timeout=1&read_timeout=2.5&write_timeout=4")
        self.assertEqual(dsn.timeouts, Timeouts(1.0, 2.5, 4.0))

    def test_go_spellings_with_units(self) -> None:
        dsn = parse_dsn("u:p@tcp(db:3306)/t?timeout=500ms&readTimeout=2s&writeTimeout=1m")
        self.assertEqual(dsn.timeouts, Timeouts(0.5, 2.0, 60.0))

    def test_bad_values_are_refused(self) -> None:
        for value in ("0", "-1", "abc", "1h", ""):
            self.assertRaises(DSNError, parse_dsn, f"mysql://u@db/t?read_timeout={value}")

    def test_the_connections_use_them(self) -> None:
        dialect = MySQLDialect(parse_dsn("mysql://u@db1,db2/t?connect_timeout=1&read_timeout=2&write_timeout=3"))
        _, kwargs = dialect.pool_args()
        self.assertEqual((kwargs["connect_timeout"], kwargs["read_timeout"], kwargs["write_timeout"]), (1, 2, 3))


class RefusedAtStartTests(TestCase):
    async def test_twistd_exits_with_the_message_and_starts_nothing(self) -> None:
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        code, output = await refused_at_start(
            cwd, "mysql://alice:hunter2@127.0.0.1:3306,bob:hunter2@127.0.0.1:3307/track")
        self.assertNotEqual(code, 0)
        self.assertIn(b"--dsn: the hosts of this DSN have different users: ", output)
        self.assertNotIn(b"hunter2", output)
        self.assertEqual(os.listdir(cwd), [])  # no spool, nothing started
