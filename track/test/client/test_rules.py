"""The client's field rules against the server's own checks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from twisted.trial.unittest import TestCase

from track.client.events import JSONNumber, prepare
from track.client.rules import Rules, builtin_rules, rules_from_openapi
from track.fields.kinds import KINDS, InvalidEvent, Kind, parse_event
from track.fields.values import JSONNumber as ServerNumber
from track.test.client.snapshot import server_rules, text
from track.web.app import API_PREFIX
from track.web.openapi import openapi_document

MINIMAL: dict[str, dict[str, Any]] = {
    "session": {"Region": "eu", "SessionID": "s", "RemoteIP": "10.0.0.1", "SessionType": "t"},
    "user": {"ProfileID": 1, "Region": "eu"},
    "item": {"ProfileID": 1, "Region": "eu", "ItemName": "i", "ItemType": "t", "IsUGC": False},
    "purchase": {"ProfileID": 1, "Region": "eu", "Currency": "EUR", "GrossAmount": 1, "NetAmount": 1,
                 "PaymentProvider": "p", "Product": "x"},
}
VALUES: list[object] = [
    0, 1, -1, 2, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 10**20, True, False, None, "", "0", "1", "01", "-0",
    "true", "yes", "T", "1.0", "1.5", "12.3456", "12.34567", "-3.25", "x", "eu", "e", "a" * 16, "a" * 17, "a" * 45,
    "a" * 46, "a" * 64, "a" * 65, "é" * 3, "x\U0001f600", "\u4e2d" * 45, "EUR", "mine-1", "has space",
    "a:b.c_d-e", "\U0001f600", "2147483648",
    "-2147483648", "0000000000000000000001", "999999999999999.9999", "1000000000000000", 1.5, 1.0, 0.25, 1e-05,
    123456789012345.5, 1e16, Decimal("1.25"), Decimal("1.00001"), JSONNumber("2.5"), "1e3", " 1", "1\n",
]


def server_takes(kind: Kind, seen: dict[str, object]) -> bool:
    data = {k: ServerNumber(v) if isinstance(v, JSONNumber) else v for k, v in seen.items()}
    try:
        parse_event(kind, data, "", None)  # type: ignore[arg-type]
    except InvalidEvent:
        return False
    return True


def bmp_only(tables: dict[str, Kind]) -> dict[str, Kind]:
    """The tables of a database with 3-byte utf8 columns."""
    return {k: e.with_string_limits({f.name: (f.max_length, True) for f in e.fields if f.type == "string"})
            for k, e in tables.items()}


class SnapshotTests(TestCase):
    def test_the_snapshot_is_what_the_server_publishes(self) -> None:
        """Regenerate with `python -m track.test.client.snapshot` when the
        server's rules change."""
        self.assertEqual(text(builtin_rules()), text(server_rules()))


class AgreementTests(TestCase):
    def test_the_client_refuses_exactly_what_the_server_refuses(self) -> None:
        for tables in (KINDS, bmp_only(KINDS)):
            rules = Rules(rules_from_openapi(openapi_document(tables, API_PREFIX, 1024 * 1024)), "server")
            checked = 0
            for kind, event in tables.items():
                for field in event.fields:
                    for value in VALUES:
                        _, seen, errors = prepare(kind, {**MINIMAL[kind], field.name: value})
                        if errors:  # cannot be sent at all
                            continue
                        refused = rules.check(kind, seen)
                        self.assertEqual(not refused, server_takes(event, seen), (kind, field.name, value, refused))
                        checked += 1
            self.assertGreater(checked, 1000)


class DeclaredKindTests(TestCase):
    """A kind from an events file: the client learns every rule from the
    document, never refuses what the server takes, and says its words."""

    def setUp(self) -> None:
        from track.test.events.example import level_up_kinds

        self.tables = level_up_kinds(self.mktemp(), original_kinds=False)
        self.rules = Rules(rules_from_openapi(openapi_document(self.tables, API_PREFIX, 1024 * 1024)), "server")

    def test_never_stricter_and_refuses_what_the_server_refuses(self) -> None:
        from track.test.events.example import GOOD

        kind = self.tables["level_up"]
        values = [*VALUES, *GOOD.values(), 7, 100, 101, 0, -1, 2**53 - 1, 2**53, "mage", "Mage", "ABC-1", "abc-1",
                  "grand master", "Grand", "2026-12-07T15:04:05Z", "2026-12-07T15:04:05", JSONNumber("0.01"),
                  JSONNumber("1.005"), "1000000", "1000000.01", JSONNumber("-0.5"), Decimal("12.5"), "0.5"]
        checked = 0
        for field in kind.fields:
            for value in values:
                _, seen, errors = prepare("level_up", {"PlayerID": 1, "Level": 1, field.name: value})
                if errors:
                    continue
                refused = self.rules.check("level_up", seen)
                takes = server_takes(kind, seen)
                if refused:
                    self.assertFalse(takes, (field.name, value, refused))  # never stricter
                elif not takes:
                    # Only a number's bounds on its text form are left to the server.
                    self.assertEqual(field.name, "Reward", (value, seen))
                    self.assertIs(type(seen[field.name]), str)
                checked += 1
        self.assertGreater(checked, 500)

    def test_the_servers_words(self) -> None:
        from track.test.events.example import BAD, BAD_WORDS

        bad = {**BAD, "Reward": JSONNumber("1.005")}
        for name, value in bad.items():
            if name == "Hardcore":
                continue  # a boolean's words are shorter on the client: "must be a boolean"
            with self.subTest(name=name):
                self.assertEqual(self.rules.check("level_up", {"PlayerID": 1, "Level": 1, name: value}),
                                 {name: BAD_WORDS[name]})
        self.assertEqual(self.rules.check("level_up", {"PlayerID": 1, "Level": 1, "Reward": "1.005"}),
                         {"Reward": BAD_WORDS["Reward"]})
        self.assertEqual(self.rules.check("level_up", {"PlayerID": 1, "Level": "500"}),
                         {"Level": "must be an integer between 1 and 100"})
        self.assertEqual(self.rules.check("session", {}), {"type": "must be one of level_up"})
