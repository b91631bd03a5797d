"""A declared kind's rules, as parse_event applies them: exact values, and
exact words for every refusal."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from track.fields.compile import compile_kinds
from track.fields.event import Constant, Kind
from track.fields.kinds import KINDS, InvalidEvent, parse_event
from track.fields.values import JSONNumber
from track.test.events.example import BAD, BAD_WORDS, BIG, GOOD, level_up_kinds

NOW = datetime(2026, 12, 7, 12, 0, 0)


def one(properties: dict[str, Any], required: tuple[str, ...] = ()) -> Kind:
    from track.events.subset import read_kinds

    doc = {"kinds": {"k": {"schema": {"type": "object", "properties": properties, "required": list(required)}}}}
    return compile_kinds(read_kinds(doc, "test")[0])["k"]


class DeclaredKindTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.kinds = level_up_kinds(self.mktemp())
        self.level_up = self.kinds["level_up"]

    def parse(self, data: dict[str, object], kind: Kind | None = None) -> tuple[Any, ...]:
        return parse_event(kind or self.level_up, dict(data), "10.0.0.1", NOW)

    def refused(self, data: dict[str, object], kind: Kind | None = None) -> dict[str, str]:
        with self.assertRaises(InvalidEvent) as caught:
            self.parse(data, kind)
        fields: dict[str, str] = caught.exception.fields
        return fields

    def test_served_beside_the_original_four(self) -> None:
        self.assertEqual(list(self.kinds), ["session", "user", "item", "purchase", "level_up"])
        self.assertEqual(self.level_up.table, "LevelUpEvent")
        self.assertEqual(self.level_up.columns, ("PlayerID", "Level", "Class", "Zone", "Reward", "Hardcore", "At",
                                                 "Guild", "Title", "MessageID", "Created"))
        self.assertEqual(self.level_up.description, "A player reached a new level.")
        for name, kind in KINDS.items():
            self.assertEqual(self.kinds[name], kind)  # compiled alike, equal field for field

    def test_every_value_exactly(self) -> None:
        row = self.parse({**GOOD, "MessageID": "lu-1"})
        self.assertEqual(row, (BIG, 7, "mage", "Zoné 1", Decimal("12.50"), True,
                               datetime(2026, 12, 7, 15, 4, 5, 250000), "ABC-12", "grand master", "lu-1", NOW))
        self.assertEqual([type(v) for v in row[:7]], [int, int, str, str, Decimal, bool, datetime])

    def test_form_text_reads_the_same(self) -> None:
        text = {k: str(v) if not isinstance(v, bool) else "true" for k, v in GOOD.items()}
        self.assertEqual(self.parse({**text, "MessageID": "lu-1"}), self.parse({**GOOD, "MessageID": "lu-1"}))

    def test_every_bad_field_named_with_its_words_in_order(self) -> None:
        errors = self.refused({**BAD, "Bogus": 1})
        self.assertEqual(list(errors.items()), [*BAD_WORDS.items(), ("Bogus", "unknown field")])

    def test_required_and_not_given(self) -> None:
        self.assertEqual(self.refused({"Level": ""}), {"PlayerID": "is required", "Level": "is required"})
        # "" is "not given" for every type but a plain string, as the original's forms.
        row = self.parse({"PlayerID": 1, "Level": 1, "Class": "", "Zone": "", "Reward": "", "Hardcore": "",
                          "At": "", "Guild": "", "Title": "", "MessageID": "m"})
        self.assertEqual(row[:9], (1, 1, None, "", None, False, None, None, None))

    def test_default_fills_a_value_not_given(self) -> None:
        row = self.parse({"PlayerID": 1, "Level": 1, "MessageID": "m"})
        self.assertIs(row[5], False)
        hardcore = self.level_up.fields[5]
        self.assertEqual(hardcore.default, Constant(False))

    def test_integer_ranges(self) -> None:
        for value, taken in ((0, True), (BIG, True), (BIG + 1, False), (-1, False), (str(BIG), True),
                             ("0" * 30 + "5", True), ("1.0", False), (JSONNumber("5.0"), False), (True, False)):
            with self.subTest(value=value):
                data: dict[str, object] = {"PlayerID": value, "Level": 1}
                self.assertEqual("PlayerID" not in self.refused_or_none(data), taken)
        self.assertEqual(self.refused({"PlayerID": "x", "Level": 0}),
                         {"PlayerID": "must be an integer", "Level": "must be an integer between 1 and 100"})

    def refused_or_none(self, data: dict[str, object]) -> dict[str, str]:
        try:
            self.parse(data)
        except InvalidEvent as e:
            return e.fields
        return {}

    def test_numbers(self) -> None:
        cases = [("0", Decimal("0.00")), ("1000000", Decimal("1000000.00")), (JSONNumber("0.5"), Decimal("0.50")),
                 (3, Decimal("3.00")), ("-0.00", Decimal("0.00"))]
        for value, parsed in cases:
            with self.subTest(value=value):
                self.assertEqual(self.parse({"PlayerID": 1, "Level": 1, "Reward": value})[4], parsed)
        words = [("-0.01", "must be a decimal number between 0 and 1000000"),
                 ("1000000.01", "must be a decimal number between 0 and 1000000"),
                 ("1e3", "must be a decimal number like 12 or 12.34"),
                 ("123456789012345678", "must have at most 17 digits before the decimal point"),
                 (1.5, "must be a decimal number"), (True, "must be a decimal number")]
        for value, message in words:
            with self.subTest(value=value):
                self.assertEqual(self.refused({"PlayerID": 1, "Level": 1, "Reward": value}), {"Reward": message})

    def test_one_sided_bounds_and_whole_numbers(self) -> None:
        kind = one({"Low": {"type": "number", "minimum": 1.5}, "High": {"type": "number", "maximum": 10,
                                                                        "multipleOf": 1}})
        self.assertEqual(self.refused({"Low": "1.4999", "High": "10.5"}, kind),
                         {"Low": "must be a decimal number of at least 1.5",
                          "High": "must be a whole number: no digits after the decimal point"})
        self.assertEqual(self.refused({"High": "11"}, kind), {"High": "must be a decimal number of at most 10"})
        self.assertEqual(self.parse({"Low": "99", "High": "-7"}, kind)[:2], (Decimal("99.0000"), Decimal("-7")))

    def test_enum(self) -> None:
        for value in ("Mage", "mage ", 1, True, JSONNumber("1.5")):
            with self.subTest(value=value):
                self.assertEqual(self.refused({"PlayerID": 1, "Level": 1, "Class": value}),
                                 {"Class": 'must be one of "warrior", "mage", "rogue"'})
        kind = one({"Dir": {"type": "string", "enum": ["nørd", "süd"], "pattern": "^n"}})
        self.assertEqual(self.refused({"Dir": "süd"}, kind), {"Dir": 'must be one of "nørd"'})

    def test_patterns(self) -> None:
        # Unanchored, as JSON Schema says; $ is the end of the text; \\d is ASCII.
        kind = one({"Code": {"type": "string", "pattern": "[0-9]{2}"}, "Tail": {"type": "string", "pattern": "x$"},
                    "Digit": {"type": "string", "pattern": "^\\d+$"}})
        self.assertEqual(self.parse({"Code": "ab12cd", "Tail": "ax", "Digit": "42"}, kind)[:3], ("ab12cd", "ax", "42"))
        self.assertEqual(self.refused({"Code": "a1b", "Tail": "ax\n", "Digit": "\u0664\u0662"}, kind),
                         {"Code": "must match [0-9]{2}", "Tail": "must match x$", "Digit": "must match ^\\d+$"})
        self.assertEqual(self.refused({"PlayerID": 1, "Level": 1, "Guild": "ABC-" + "1" * 9}),
                         {"Guild": "must be at most 12 characters"})
        self.assertEqual(self.refused({"PlayerID": 1, "Level": 1, "Title": "x" * 21}),
                         {"Title": "must be lower-case letters and spaces"})

    def test_date_times_are_stored_in_utc(self) -> None:
        cases = [("2026-12-07T15:04:05Z", datetime(2026, 12, 7, 15, 4, 5)),
                 ("2026-12-07t23:30:00-01:30", datetime(2026, 12, 8, 1, 0)),
                 ("2024-02-29T00:00:00.123456789+00:00", datetime(2024, 2, 29, 0, 0, 0, 123456)),
                 ("0001-01-01T00:00:00Z", datetime(1, 1, 1))]
        for value, stored in cases:
            with self.subTest(value=value):
                self.assertEqual(self.parse({"PlayerID": 1, "Level": 1, "At": value})[6], stored)
        bad: tuple[object, ...] = ("2026-02-29T00:00:00Z", "2026-12-07T15:04:05", "2026-12-07 15:04:05Z",
                                   "1765119845000", 1765119845000, "0001-01-01T00:00:00+01:00",
                                   "9999-12-31T23:59:59-01:00")
        for wrong in bad:
            with self.subTest(value=wrong):
                self.assertEqual(self.refused({"PlayerID": 1, "Level": 1, "At": wrong}), {"At": BAD_WORDS["At"]})

    def test_a_file_kind_replaces_an_original(self) -> None:
        doc = {"kinds": {"user": {"table": "UserEvent", "x-track-remote-ip": True, "schema": {
            "required": ["ProfileID"], "properties": {"ProfileID": {"type": "integer"},
                                                     "Plan": {"type": "string", "enum": ["free", "paid"]}}}}}}
        kinds = level_up_kinds(self.mktemp(), doc)
        self.assertEqual(list(kinds), ["session", "user", "item", "purchase"])
        user = kinds["user"]
        self.assertEqual(user.columns, ("ProfileID", "Plan", "MessageID", "RemoteIP", "Created"))
        self.assertEqual(self.refused({"ProfileID": 1, "Region": "eu"}, user), {"Region": "unknown field"})
        self.assertEqual(self.parse({"ProfileID": 1, "Plan": "paid", "MessageID": "m"}, user),
                         (1, "paid", "m", "10.0.0.1", NOW))

    def test_original_kinds_false(self) -> None:
        self.assertEqual(list(level_up_kinds(self.mktemp(), original_kinds=False)), ["level_up"])
        self.assertEqual(list(compile_kinds({})), [])

    def test_a_spooled_row_reads_back_the_same(self) -> None:
        """What the spool keeps during an outage is what replay inserts."""
        from track.spool.records import decode, encode

        for data in ({**GOOD, "MessageID": "lu-1"}, {"PlayerID": 0, "Level": 100, "MessageID": "lu-2"}):
            row = self.parse(data)
            record = encode(self.level_up, row)
            kind, back = decode(record[12:], self.kinds)
            self.assertEqual((kind, back), (self.level_up, row))
            self.assertEqual([type(v) for v in back], [type(v) for v in row])
