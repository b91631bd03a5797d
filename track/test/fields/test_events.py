"""Validation, table-driven over every field type and every event kind."""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from decimal import Decimal

from twisted.trial.unittest import SynchronousTestCase

from track.fields.kinds import KINDS, Field, InvalidEvent, parse_event
from track.fields.messageid import new_message_id
from track.fields.values import INT32_MAX, INT32_MIN, Invalid, JSONNumber

NOW = datetime(2026, 11, 28, 12, 0, 0)

# type -> [(input, expected parsed value)]
VALID: dict[str, list[tuple[object, object]]] = {
    "int": [
        ("0", 0), ("-1", -1), ("007", 7), (str(INT32_MAX), INT32_MAX),
        (str(INT32_MIN), INT32_MIN), (42, 42), (-5, -5), ("0" * 4400 + "1", 1),
    ],
    "bool": [
        *((t, True) for t in ("1", "t", "T", "TRUE", "true", "True")),
        *((f, False) for f in ("0", "f", "F", "FALSE", "false", "False")),
        (True, True), (False, False), (1, True), (0, False),
    ],
    "money": [
        ("12", Decimal("12.0000")), ("12.5", Decimal("12.5000")),
        ("-3.1234", Decimal("-3.1234")), ("0.0001", Decimal("0.0001")),
        ("999999999999999.9999", Decimal("999999999999999.9999")),
        ("000000000000000001.5", Decimal("1.5000")),
        (7, Decimal("7.0000")), (JSONNumber("1.25"), Decimal("1.2500")),
    ],
    "region": [("eu", "eu"), ("EU", "EU"), ("A" * 16, "A" * 16), ("NorthAmerica", "NorthAmerica")],
}
INVALID = {
    "int": [
        " 1", "1 ", "+1", "1e3", "0x10", "1.0", "1_000", "\u0661\u0662", "\uff11",
        str(INT32_MAX + 1), str(INT32_MIN - 1), "-", "--1", 2**31, JSONNumber("1.0"),
        JSONNumber("1e3"), True, False, [], {}, "ten", "1" * 5000, "-" + "9" * 4400,
    ],
    "bool": ["yes", "no", "2", "-1", 2, "TRUE ", "tRUE", JSONNumber("1.0"), [], {}],
    "money": [
        "1.23456", "1e3", "NaN", "nan", "Infinity", "-Infinity", "1,5", ".5", "5.", "+5",
        "1000000000000000", " 1", "1 ", "\u0661", JSONNumber("1e3"), JSONNumber("1.00001"),
        True, [], {},
    ],
    "region": ["e", "A" * 17, "e1", "\u00e9u", "eu ", "e-u", "eu\n", 12, True, JSONNumber("1.5")],
}


class FieldTypeTests(SynchronousTestCase):
    def test_valid_values_parse_exactly(self) -> None:
        for kind, cases in VALID.items():
            field = Field("F", kind, True)
            for raw, expected in cases:
                with self.subTest(kind=kind, raw=raw):
                    value = field.parse(raw)
                    self.assertEqual(value, expected)
                    self.assertIs(type(value), type(expected))

    def test_invalid_values_are_refused(self) -> None:
        for kind, cases in INVALID.items():
            field = Field("F", kind, True)
            for raw in cases:
                with self.subTest(kind=kind, raw=raw):
                    self.assertRaises(Invalid, field.parse, raw)

    def test_money_keeps_exact_digits(self) -> None:
        value = Field("GrossAmount", "money", True).parse("123456789012345.6789")
        self.assertEqual(str(value), "123456789012345.6789")

    def test_strings_are_kept_exactly_up_to_the_column_length(self) -> None:
        field = Field("Message", "string", False, 45)
        raw: object
        for raw in ("x" * 45, "O'Brien \"quoted\"; DROP TABLE x;--", "\u00e9t\u00e9 \U0001f600", "a\x00b"):
            with self.subTest(raw=raw):
                self.assertEqual(field.parse(raw), raw)
        self.assertRaises(Invalid, field.parse, "x" * 46)
        for raw in (1, True, None, [], {}, JSONNumber("1.5"), "\ud800"):
            with self.subTest(raw=raw):
                self.assertRaises(Invalid, field.parse, raw)

    def test_three_byte_columns_refuse_four_byte_characters(self) -> None:
        field = Field("Message", "string", False, 45, bmp_only=True)
        self.assertEqual(field.parse("\u00e9t\u00e9 \u20ac"), "\u00e9t\u00e9 \u20ac")
        error = self.assertRaises(Invalid, field.parse, "hi \U0001f600")
        self.assertIn("emoji", str(error))


# kind -> (a complete valid event, its row in column order without server columns)
FULL = {
    "session": (
        {"Region": "eu", "SessionID": "s1", "RemoteIP": "10.0.0.1", "SessionType": "login",
         "Message": "hello", "ProfileID": "7", "Language": "en"},
        ("eu", "s1", "10.0.0.1", "login", "hello", 7, "en"),
    ),
    "user": (
        {"ProfileID": "7", "Region": "us", "Referrer": "ad", "Message": "m", "Language": "de-AT"},
        (7, "us", "ad", "m", "de-AT"),
    ),
    "item": (
        {"ProfileID": "7", "Region": "eu", "ItemName": "sword", "ItemType": "weapon",
         "IsUGC": "true", "PriceGold": "10", "PriceSilver": "-2", "IsRented": "T", "Language": "fr"},
        (7, "eu", "sword", "weapon", True, 10, -2, True, "fr"),
    ),
    "purchase": (
        {"ProfileID": "7", "Region": "eu", "Currency": "EUR", "GrossAmount": "9.99",
         "NetAmount": "8", "PaymentProvider": "card", "Product": "gems", "Language": "pt-BR"},
        (7, "eu", "EUR", Decimal("9.99"), Decimal("8"), "card", "gems", "pt-BR"),
    ),
}
REQUIRED = {
    "session": {"Region", "SessionID", "RemoteIP", "SessionType"},
    "user": {"ProfileID", "Region"},
    "item": {"ProfileID", "Region", "ItemName", "ItemType", "IsUGC"},
    "purchase": {"ProfileID", "Region", "Currency", "GrossAmount", "NetAmount",
                 "PaymentProvider", "Product"},
}


class ParseEventTests(SynchronousTestCase):
    def test_the_seed_api_fields_and_required_sets(self) -> None:
        for name, required in REQUIRED.items():
            kind = KINDS[name]
            self.assertEqual({f.name for f in kind.fields if f.required}, required)
            self.assertEqual({f.name for f in kind.fields}, set(FULL[name][0]) | {"MessageID"})

    def test_language_is_optional_and_at_most_16_characters(self) -> None:
        for name, (data, _) in FULL.items():
            kind = KINDS[name]
            columns = kind.columns
            without = {k: v for k, v in data.items() if k != "Language"}
            self.assertIsNone(parse_event(kind, without, "", NOW)[columns.index("Language")], name)
            row = parse_event(kind, dict(data, Language="x" * 16), "", NOW)
            self.assertEqual(row[columns.index("Language")], "x" * 16)
            error = self.assertRaises(InvalidEvent, parse_event, kind, dict(data, Language="x" * 17), "", NOW)
            self.assertEqual(error.fields, {"Language": "must be at most 16 characters"})

    def test_empty_optional_values(self) -> None:
        """An empty optional string is stored as given; an empty optional
        number means not given (the README's API section says both)."""
        kind = KINDS["user"]
        data = dict(FULL["user"][0], Referrer="", Message="")
        row = parse_event(kind, data, "", NOW)
        self.assertEqual((row[kind.columns.index("Referrer")], row[kind.columns.index("Message")]), ("", ""))
        session = KINDS["session"]
        row = parse_event(session, dict(FULL["session"][0], ProfileID=""), "", NOW)
        self.assertIsNone(row[session.columns.index("ProfileID")])

    def test_is_rented_is_an_optional_bool_of_items_only_and_false_by_default(self) -> None:
        kind = KINDS["item"]
        index = kind.columns.index("IsRented")
        data = {k: v for k, v in FULL["item"][0].items() if k != "IsRented"}
        self.assertIs(parse_event(kind, data, "", NOW)[index], False)
        self.assertIs(parse_event(kind, dict(data, IsRented=""), "", NOW)[index], False)
        self.assertIs(parse_event(kind, dict(data, IsRented=True), "", NOW)[index], True)
        self.assertIs(parse_event(kind, dict(data, IsRented="0"), "", NOW)[index], False)
        error = self.assertRaises(InvalidEvent, parse_event, kind, dict(data, IsRented="yes"), "", NOW)
        self.assertEqual(list(error.fields), ["IsRented"])
        for name in ("session", "user", "purchase"):
            error = self.assertRaises(InvalidEvent, parse_event, KINDS[name],
                                      dict(FULL[name][0], IsRented="1"), "", NOW)
            self.assertEqual(error.fields, {"IsRented": "unknown field"})

    def test_complete_events_give_their_rows(self) -> None:
        for name, (data, expected) in FULL.items():
            kind = KINDS[name]
            row = parse_event(kind, dict(data, MessageID="client-id:1"), "192.0.2.1", NOW)
            server = ("192.0.2.1", NOW) if kind.remote_ip_column else (NOW,)
            self.assertEqual(row, (*expected, "client-id:1", *server))
            self.assertEqual(len(row), len(kind.columns))
            self.assertEqual(row[kind.message_id_index], "client-id:1")

    def test_the_server_assigns_a_uuid_message_id_when_none_is_sent(self) -> None:
        kind = KINDS["user"]
        ids = {parse_event(kind, FULL["user"][0], "", NOW)[kind.message_id_index] for _ in range(3)}
        self.assertEqual(len(ids), 3)
        for message_id in ids:
            self.assertEqual(str(uuid.UUID(message_id)), message_id)
        blank = parse_event(kind, dict(FULL["user"][0], MessageID=""), "", NOW)
        self.assertEqual(len(blank[kind.message_id_index]), 36)

    def test_a_forked_child_assigns_message_ids_of_its_own(self) -> None:
        parent = new_message_id()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report one id and leave at once
            os.write(write, new_message_id().encode())
            os._exit(0)
        os.close(write)
        child = os.read(read, 100).decode()
        os.close(read)
        os.waitpid(pid, 0)
        self.assertEqual(str(uuid.UUID(child)), child)
        self.assertNotEqual(child[:24], parent[:24])
        self.assertEqual(new_message_id()[:24], parent[:24])

    def test_message_ids_are_checked(self) -> None:
        kind = KINDS["user"]
        for good in ("a", "0b1f.2_3:4-5", "x" * 64, "550e8400-e29b-41d4-a716-446655440000"):
            self.assertEqual(parse_event(kind, dict(FULL["user"][0], MessageID=good), "", NOW)
                             [kind.message_id_index], good)
        for bad in ("x" * 65, "a b", "a/b", "é", 5, None, "id\n"):
            with self.subTest(bad=bad):
                error = self.assertRaises(InvalidEvent, parse_event, kind,
                                          dict(FULL["user"][0], MessageID=bad), "", NOW)
                self.assertEqual(list(error.fields), ["MessageID"])

    def test_remote_ip_column_filled_for_user_and_item_only(self) -> None:
        self.assertEqual(
            {k for k, e in KINDS.items() if "RemoteIP" in e.columns[len(e.fields):]},
            {"user", "item"},
        )

    def test_every_missing_required_field_is_named(self) -> None:
        for kind, required in REQUIRED.items():
            error = self.assertRaises(InvalidEvent, parse_event, KINDS[kind], {}, "", NOW)
            self.assertEqual(error.fields, {name: "is required" for name in required})

    def test_blank_required_is_missing_and_blank_optional_is_null(self) -> None:
        data = dict(FULL["item"][0], PriceGold="", ItemName="")
        error = self.assertRaises(InvalidEvent, parse_event, KINDS["item"], data, "", NOW)
        self.assertEqual(error.fields, {"ItemName": "is required"})
        data["ItemName"] = "axe"
        row = parse_event(KINDS["item"], data, "", NOW)
        self.assertIsNone(row[5])

    def test_unknown_and_bad_fields_are_all_reported(self) -> None:
        data = dict(FULL["session"][0], ProfileID="x", Bogus="1", region="eu")
        del data["Message"]
        error = self.assertRaises(InvalidEvent, parse_event, KINDS["session"], data, "", NOW)
        self.assertEqual(
            error.fields,
            {"ProfileID": "must be an integer", "Bogus": "unknown field", "region": "unknown field"},
        )

    def test_null_is_refused(self) -> None:
        data = dict(FULL["user"][0], Message=None)
        error = self.assertRaises(InvalidEvent, parse_event, KINDS["user"], data, "", NOW)
        self.assertEqual(error.fields, {"Message": "must not be null"})
