"""--anonymize-ip / --anonymize-ipv6 and Track-Anonymous: what is stored,
spooled and shown of a client's address."""

from __future__ import annotations

import json
import os
from typing import Any

import treq
from twisted.logger import globalLogPublisher
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from track.run.options import Options
from track.test.admin.test_feed import serve_with_admin
from track.test.mariadb import MYSQL_SKIP
from track.test.process import wait_until
from track.test.rawhttp import connect, request
from track.test.support import admin_port, client_pool, execute, reset_mysql, serve
from track.web.clients.anonymize import Anonymizer

FORM: dict[str | bytes, str | bytes] = {"Content-Type": "application/x-www-form-urlencoded"}
JSON: dict[str | bytes, str | bytes] = {"Content-Type": "application/json", "X-Forwarded-For": "203.9.113.77"}
TRUST_LOCAL = ("--trusted-proxy", "127.0.0.1")


class AnonymizerTests(SynchronousTestCase):
    def test_ipv4_keeps_the_first_octets(self) -> None:
        self.assertEqual([Anonymizer(n)("203.0.113.77") for n in (1, 2, 3, 4)],
                         ["203.0.113.0", "203.0.0.0", "203.0.0.0", "0.0.0.0"])
        self.assertEqual(Anonymizer(1)("203.0.113.77"), "203.0.113.0")
        self.assertEqual(Anonymizer(3)("203.9.113.77"), "203.0.0.0")

    def test_ipv6_keeps_the_first_segments(self) -> None:
        a = Anonymizer(1, 5)
        self.assertEqual(a("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"), "2001:db8:aaaa::")
        self.assertEqual(Anonymizer(0, 8)("2001:db8::1"), "::")
        self.assertEqual(a("fe80::1234:5678:9abc:def0%eth0"), "fe80::")
        self.assertEqual(a("::ffff:198.51.100.9"), "::ffff:198.51.100.0")  # mapped: the IPv4 rule

    def test_not_an_address_is_not_kept_and_off_keeps_all(self) -> None:
        self.assertEqual(Anonymizer(2)("my-laptop.local"), "")
        self.assertEqual(Anonymizer()("203.0.113.77"), "203.0.113.77")
        self.assertEqual(Anonymizer(2)("2001:db8:aaaa:bbbb::1"), "2001:db8:aaaa:bbbb::1")  # v6 off


class OptionTests(SynchronousTestCase):
    def parse(self, *argv: str) -> Options:
        options = Options()
        options.parseOptions(["--http", "tcp:0", *argv])
        return options

    def test_ipv6_defaults_to_five_segments_with_ipv4(self) -> None:
        options = self.parse("--anonymize-ip", "1")
        self.assertEqual((options.config.anonymize_ip, options.config.anonymize_ipv6), (1, 5))
        options = self.parse("--anonymize-ipv6", "3")
        self.assertEqual((options.config.anonymize_ip, options.config.anonymize_ipv6), (None, 3))
        self.assertEqual(self.parse().config.anonymize_ipv6, None)

    def test_out_of_range_is_refused(self) -> None:
        for argv in (("--anonymize-ip", "5"), ("--anonymize-ip", "0"), ("--anonymize-ipv6", "9")):
            self.assertRaises(usage.UsageError, self.parse, *argv)


class StoredTests(TestCase):
    skip = MYSQL_SKIP

    async def post(self, port: int, kind: str, body: str, **headers: str) -> int:
        all_headers: dict[str | bytes, str | bytes] = dict(FORM)
        all_headers.update(headers)
        response = await treq.post(f"http://127.0.0.1:{port}/api/1.0/track/{kind}/", data=body.encode(),
                                   headers=all_headers, pool=client_pool(self))
        await response.content()
        code: int = response.code
        return code

    async def test_rows_and_the_live_page_hold_only_the_kept_bits(self) -> None:
        dsn = reset_mysql(self)
        lines: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            if event.get("log_format") == "{client} {method} {uri} {code}":
                lines.append(str(event["client"]))

        globalLogPublisher.addObserver(observe)  # type: ignore[arg-type]
        self.addCleanup(globalLogPublisher.removeObserver, observe)  # type: ignore[arg-type]
        port, _ = serve(self, dsn, *TRUST_LOCAL, "--access-log", anonymize_ip=2,
                        admin_http="tcp:0:interface=127.0.0.1")
        xff = "X-Forwarded-For"
        self.assertEqual(await self.post(port, "user", "ProfileID=1&Region=eu&MessageID=a1",
                                         **{xff: "203.0.113.77"}), 201)
        self.assertEqual(await self.post(port, "item", "ProfileID=2&Region=eu&ItemName=x&ItemType=y&IsUGC=0"
                                         "&MessageID=a2", **{xff: "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"}), 201)
        self.assertEqual(await self.post(port, "session", "ProfileID=3&Region=eu&SessionID=s&SessionType=t"
                                         "&RemoteIP=198.51.100.9&MessageID=a3"), 201)
        self.assertEqual(await self.post(port, "user", "ProfileID=4&Region=eu&MessageID=a4",
                                         **{xff: "203.0.113.77", "Track-Anonymous": "1"}), 201)
        self.assertEqual(await self.post(port, "session", "ProfileID=5&Region=eu&SessionID=s&SessionType=t"
                                         "&RemoteIP=198.51.100.9&MessageID=a5", **{"Track-Anonymous": "1"}), 201)
        rows = execute(dsn, "SELECT MessageID, RemoteIP FROM UserEvent UNION ALL "
                            "SELECT MessageID, RemoteIP FROM ItemEvent UNION ALL "
                            "SELECT MessageID, RemoteIP FROM SessionEvent ORDER BY MessageID")
        self.assertEqual(rows, [("a1", "203.0.0.0"), ("a2", "2001:db8:aaaa::"), ("a3", "198.51.0.0"),
                                ("a4", ""), ("a5", "")])
        feed = await (await treq.get(f"http://127.0.0.1:{admin_port(self)}/feed", pool=client_pool(self))).text()
        for whole in ("203.0.113.77", "bbbb", "198.51.100.9"):
            self.assertNotIn(whole, feed)
        self.assertIn("203.0.0.0", feed)
        await wait_until(lambda: len(lines) >= 5, "the access log lines")
        self.assertEqual(lines[:5], ["127.0.0.0", "127.0.0.0", "127.0.0.0", "-", "-"])

    async def test_the_spool_gets_the_anonymised_address(self) -> None:
        """With the database down, the event goes to the spool: anonymised there too."""
        from track.storage.dsn import parse_dsn

        spool = os.path.abspath(self.mktemp())
        port, _ = serve(self, parse_dsn("mysql://root@127.0.0.1:1/unreachable"), *TRUST_LOCAL,
                        "--spool-dir", spool, anonymize_ip=1)
        self.assertEqual(await self.post(port, "user", "ProfileID=1&Region=eu&MessageID=sp1",
                                         **{"X-Forwarded-For": "203.0.113.77"}), 201)
        data = b""
        for root, _, names in os.walk(spool):
            for name in names:
                with open(os.path.join(root, name), "rb") as f:
                    data += f.read()
        self.assertIn(b"sp1", data)
        self.assertNotIn(b"203.0.113.77", data)
        self.assertIn(b"203.0.113.0", data)

    async def test_the_batch_endpoint_anonymises_too(self) -> None:
        dsn = reset_mysql(self)
        port, _ = serve(self, dsn, *TRUST_LOCAL, anonymize_ip=3)
        body = json.dumps({"events": [{"type": "user", "ProfileID": 1, "Region": "eu", "MessageID": "b1"}]})
        response = await treq.post(f"http://127.0.0.1:{port}/api/1.0/track/batch/", data=body.encode(),
                                   headers=JSON,
                                   pool=client_pool(self))
        await response.content()
        self.assertEqual(response.code, 201)
        self.assertEqual(execute(dsn, "SELECT RemoteIP FROM UserEvent"), [("203.0.0.0",)])


class LivePageTests(TestCase):
    async def test_requests_refused_on_the_connection_show_the_anonymised_peer(self) -> None:
        """413 by Content-Length, answered before any route: the live page's
        client is anonymised too; a rejection by a route likewise."""
        public, admin = serve_with_admin(self, "--anonymize-ip", "1")
        client = await connect(public)
        client.send(request("/api/1.0/track/user/", b"", {"Content-Length": "999999999",
                                                          "Content-Type": "application/x-www-form-urlencoded"}))
        await client.closed
        self.assertEqual(client.statuses(), [413])
        response = await treq.post(f"http://127.0.0.1:{public}/api/1.0/track/user/", data=b"ProfileID=x",
                                   headers=FORM, pool=client_pool(self))
        self.assertEqual(response.code, 400)
        await response.content()
        feed = await (await treq.get(f"http://127.0.0.1:{admin}/feed", pool=client_pool(self))).json()
        self.assertEqual([(r["status"], r["client"]) for r in feed["rejected"]],
                         [(400, "127.0.0.0"), (413, "127.0.0.0")])
