"""DSN parsing: the URL form, the original's Go form, SQLite, and errors."""

from __future__ import annotations

import os

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from track.run.options import Options
from track.storage.dsn import DSN, DSNError, parse_dsn
from track.test.process import refused_at_start

# Charsets where a backslash can be the second byte of a character.
MULTIBYTE = ("gbk", "sjis", "big5", "cp932", "gb18030")


class ParseDSNTests(SynchronousTestCase):
    def check(self, text: str, **expected: object) -> DSN:
        dsn = parse_dsn(text)
        for name, value in expected.items():
            self.assertEqual(getattr(dsn, name), value, name)
        return dsn

    def test_url_form(self) -> None:
        self.check(
            "mysql://user:p%40ss:w@db.example:3307/events?charset=utf8mb4",
            kind="mysql", user="user", password="p@ss:w", host="db.example", port=3307,
            database="events", params={"charset": "utf8mb4"},
        )

    def test_url_passwords_may_hold_any_character(self) -> None:
        self.check("mysql://app:hunter/2?#@x@db.example:3306/track?charset=utf8mb4",
                   user="app", password="hunter/2?#@x", host="db.example", database="track")
        self.check("mysql://root@[::1]:3307/x", host="::1", port=3307)

    def test_mariadb_scheme_and_defaults(self) -> None:
        self.check("mariadb://root@127.0.0.1/test", kind="mysql", port=3306, password="", user="root")

    def test_url_unix_socket(self) -> None:
        self.check("mysql://u:p@localhost/db?unix_socket=/run/mysqld/mysqld.sock",
                   unix_socket="/run/mysqld/mysqld.sock", database="db")

    def test_original_go_form_copied_from_an_old_config(self) -> None:
        self.check(
            "track:s3cr@t@tcp(10.1.2.3:3306)/track?charset=utf8",
            kind="mysql", user="track", password="s3cr@t", host="10.1.2.3", port=3306,
            database="track", params={"charset": "utf8"},
        )

    def test_go_form_variants(self) -> None:
        self.check("root@tcp(localhost)/db", host="localhost", port=3306, password="")
        self.check("u:p@/db", host="127.0.0.1", port=3306, database="db")
        self.check("u:p@tcp([::1]:3307)/db", host="::1", port=3307)
        self.check("u:p@unix(/tmp/mysql.sock)/db", unix_socket="/tmp/mysql.sock")

    def test_sqlite(self) -> None:
        self.check("sqlite:///var/lib/track/events.db", kind="sqlite", path="/var/lib/track/events.db")
        self.check("sqlite:relative.db", kind="sqlite", path="relative.db")

    def test_no_dsn_is_the_embedded_default(self) -> None:
        self.check("", kind="sqlite", path="track.sqlite3")

    def test_malformed_dsns_say_what_is_wrong(self) -> None:
        cases = {
            "nonsense": "expected mysql://",
            "mysql://host:3306/": "names no database",
            "postgres://u@h/db": "unsupported DSN scheme 'postgres'",
            "u:p@tcp(h:99999)/db": "invalid port",
            "u:p@udp(h)/db": "unsupported network 'udp'",
            "u:p@tcp(h)/": "names no database",
            "sqlite://": "no file path",
            "mysql://u:hunter2@h:port/db": "invalid port 'port'",
            "mysql://u:hunter2/x@h:port/db": "invalid port 'port'",
            "mysql://u:hunter2?x@h:99999/db": "invalid port '99999'",
        }
        for text, message in cases.items():
            with self.subTest(text=text):
                error = self.assertRaises(DSNError, parse_dsn, text)
                self.assertIn(message, str(error))
                self.assertNotIn("hunter2", str(error))

    def test_utf8_charsets_are_accepted_in_either_form(self) -> None:
        for charset in ("utf8", "utf8mb3", "utf8mb4", "UTF8MB4", "utf8mb4,utf8", ""):
            with self.subTest(charset=charset):
                self.check(f"u:p@tcp(h:3306)/db?charset={charset}", params={"charset": charset})
                self.check(f"mysql://u:p@h:3306/db?charset={charset}", params={"charset": charset})
                self.check(f"u:p@tcp(h)/db?parseTime=true&charset={charset}&loc=UTC",
                           params={"charset": charset, "parseTime": "true", "loc": "UTC"})

    def test_any_other_charset_is_refused_in_either_form(self) -> None:
        for charset in (*MULTIBYTE, "GBK", "latin1", "utf8mb4,gbk", "utf16"):
            for text in (f"u:hunter2@tcp(h:3306)/db?charset={charset}",
                         f"u:hunter2@unix(/tmp/s)/db?charset={charset}",
                         f"mysql://u:hunter2@h:3306/db?charset={charset}",
                         f"mariadb://u:hunter2@h/db?unix_socket=/tmp/s&charset={charset}"):
                with self.subTest(text=text):
                    error = self.assertRaises(DSNError, parse_dsn, text)
                    self.assertIn("unsupported charset", str(error))
                    self.assertIn("utf8mb4", str(error))
                    self.assertNotIn("hunter2", str(error))
        error = self.assertRaises(DSNError, parse_dsn, "u:p@tcp(h)/db?charset=utf8mb4,gbk")
        self.assertIn("'gbk'", str(error))

    def test_password_never_printed(self) -> None:
        for text in ("mysql://u:hunter2@h/db", "u:hunter2@tcp(h:1)/db"):
            dsn = parse_dsn(text)
            for shown in (str(dsn), repr(dsn), dsn.redacted()):
                self.assertNotIn("hunter2", shown)
            self.assertIn("***", str(dsn))


class CharsetOptionTests(TestCase):
    """`twistd track --dsn '...?charset=gbk'` is a usage error, not a start."""

    def test_a_multibyte_charset_is_a_usage_error(self) -> None:
        for charset in MULTIBYTE:
            for dsn in (f"u:hunter2@tcp(127.0.0.1:3306)/db?charset={charset}",
                        f"mysql://u:hunter2@127.0.0.1:3306/db?charset={charset}"):
                error = self.assertRaises(usage.UsageError, Options().parseOptions, ["--dsn", dsn])
                self.assertIn(f"--dsn: unsupported charset {charset!r}", str(error))
                self.assertNotIn("hunter2", str(error))

    def test_utf8_as_old_configs_have_it_is_accepted(self) -> None:
        for dsn in ("u:p@tcp(127.0.0.1:3306)/db?charset=utf8", "mysql://u:p@127.0.0.1/db?charset=utf8mb4"):
            options = Options()
            options.parseOptions(["--dsn", dsn])
            self.assertEqual(options.config.dsn.database, "db")

    async def test_twistd_exits_with_the_message(self) -> None:
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        code, output = await refused_at_start(cwd, "track:hunter2@tcp(127.0.0.1:3306)/track?charset=gbk")
        self.assertNotEqual(code, 0)
        self.assertIn(b"--dsn: unsupported charset 'gbk' in DSN", output)
        self.assertNotIn(b"hunter2", output)
        self.assertEqual(os.listdir(cwd), [])  # nothing started: no spool, no database file
