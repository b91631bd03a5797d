"""Reading an events file: the JSON Schema subset, and errors that name the
kind, the property and the keyword."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from track.events.declared import DATE_TIME, INTEGER, NUMBER, STRING
from track.events.files import original_kinds, original_text, served_kinds
from track.events.subset import EventsFileError, camel_table, read_kinds
from track.test.events.example import ISSUE_EXAMPLE

LEVEL_UP = ISSUE_EXAMPLE


def one_kind(properties: dict[str, Any], required: tuple[str, ...] = (), **kind: object) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": list(required)}
    return {"kinds": {"k": {"schema": schema, **kind}}}


class ReadTests(SynchronousTestCase):
    def write(self, document: object, suffix: str = ".json") -> str:
        path = str(self.mktemp()) + suffix
        with open(path, "w", encoding="utf-8") as f:
            f.write(document if isinstance(document, str) else json.dumps(document))
        return path

    def test_issue_example(self) -> None:
        """The issue's file: every property typed as declared, in order."""
        kinds = served_kinds(self.write(LEVEL_UP))
        self.assertEqual(list(kinds), ["session", "user", "item", "purchase", "level_up"])
        level_up = kinds["level_up"]
        self.assertEqual(level_up.table, "LevelUpEvent")
        self.assertEqual([p.name for p in level_up.properties],
                         ["PlayerID", "Level", "Class", "Zone", "Reward", "Hardcore"])
        player, level, klass, zone, reward, _ = level_up.properties
        self.assertEqual((player.type, player.required, player.int_range, player.wide),
                         (INTEGER, True, (-(2**31), 2**31 - 1), False))
        self.assertEqual(level.int_range, (1, 100))
        self.assertEqual((klass.type, klass.enum, klass.length, klass.required),
                         (STRING, ("warrior", "mage", "rogue"), 7, False))
        self.assertEqual(zone.length, 64)
        self.assertEqual((reward.type, reward.scale), (NUMBER, 4))

    def test_yaml(self) -> None:
        """A .yaml file reads the same as its JSON."""
        text = ("kinds:\n  page_view:\n    schema:\n      type: object\n      required: [Path]\n"
                "      properties:\n        Path: {type: string, maxLength: 200}\n"
                "        Seconds: {type: number, multipleOf: 0.01, maximum: 86400}\n")
        kind = served_kinds(self.write(text, ".yaml"))["page_view"]
        self.assertEqual(kind.table, "PageViewEvent")
        self.assertEqual([(p.name, p.required) for p in kind.properties], [("Path", True), ("Seconds", False)])
        self.assertEqual((kind.properties[1].scale, kind.properties[1].maximum), (2, Decimal(86400)))

    def test_original_kinds_false(self) -> None:
        kinds = served_kinds(self.write({**LEVEL_UP, "original_kinds": False}))
        self.assertEqual(list(kinds), ["level_up"])

    def test_replaces_original(self) -> None:
        """A kind of an original's name replaces it, in its place."""
        doc = {"kinds": {"user": {"table": "UserEvent", "schema": {"properties": {"ProfileID": {"type": "integer"}}}}}}
        kinds = served_kinds(self.write(doc))
        self.assertEqual(list(kinds), ["session", "user", "item", "purchase"])
        self.assertEqual([p.name for p in kinds["user"].properties], ["ProfileID"])

    def test_default_table(self) -> None:
        self.assertEqual(camel_table("level_up"), "LevelUpEvent")
        self.assertEqual(camel_table("checkout_step2"), "CheckoutStep2Event")

    def test_wide_integer_and_date_time(self) -> None:
        kind = served_kinds(self.write(one_kind({
            "Big": {"type": "integer", "minimum": 0, "maximum": 2**40},
            "At": {"type": "string", "format": "date-time"}})))["k"]
        self.assertTrue(kind.properties[0].wide)
        self.assertEqual(kind.properties[1].format, DATE_TIME)

    def test_original_file(self) -> None:
        """The shipped file declares the original four, with their tables."""
        kinds = original_kinds()
        self.assertEqual({k: v.table for k, v in kinds.items()},
                         {"session": "SessionEvent", "user": "UserEvent", "item": "ItemEvent",
                          "purchase": "PurchaseEvent"})
        self.assertEqual([k for k, v in kinds.items() if v.remote_ip], ["user", "item"])
        gross = kinds["purchase"].property("GrossAmount")
        assert gross is not None
        self.assertEqual(gross.scale, 4)
        rented = kinds["item"].property("IsRented")
        assert rented is not None
        self.assertEqual((rented.has_default, rented.default), (True, False))
        self.assertEqual(served_kinds(None), kinds)
        self.assertIn('"kinds"', original_text())


class ErrorTests(SynchronousTestCase):
    """Each mistake is refused at start with a message naming where it is."""

    def refused(self, document: object, *words: str) -> str:
        with self.assertRaises(EventsFileError) as caught:
            read_kinds(document, "f.json")
        message = str(caught.exception)
        for word in words:
            self.assertIn(word, message)
        return str(message)

    def test_unsupported_keyword(self) -> None:
        self.refused(one_kind({"Zone": {"type": "string", "minLength": 2}}),
                     "kind 'k'", "property 'Zone'", "keyword 'minLength'", "not supported")

    def test_unsupported_format(self) -> None:
        self.refused(one_kind({"Mail": {"type": "string", "format": "email"}}),
                     "property 'Mail'", "'format'", "email", "date-time")

    def test_unsupported_type(self) -> None:
        self.refused(one_kind({"Tags": {"type": "array"}}), "property 'Tags'", "\"type\"", "'array'")

    def test_kind_keyword(self) -> None:
        self.refused({"kinds": {"k": {"schema": {"properties": {"A": {"type": "integer"}}}, "version": 2}}},
                     "kind 'k'", "keyword 'version'")

    def test_schema_keyword(self) -> None:
        self.refused({"kinds": {"k": {"schema": {"properties": {"A": {"type": "integer"}}, "oneOf": []}}}},
                     "kind 'k'", "keyword 'oneOf'")

    def test_additional_properties(self) -> None:
        self.refused({"kinds": {"k": {"schema": {"properties": {"A": {"type": "integer"}},
                                                   "additionalProperties": True}}}},
                     "additionalProperties")

    def test_required_unknown(self) -> None:
        self.refused(one_kind({"A": {"type": "integer"}}, ("B",)), "'B'", "not among its properties")

    def test_reserved_names(self) -> None:
        for name in ("MessageID", "Created", "Timestamp", "type", "EventID"):
            self.refused(one_kind({name: {"type": "string"}}), f"property {name!r}", "reserved")
        remote = one_kind({"RemoteIP": {"type": "string"}})
        remote["kinds"]["k"]["x-track-remote-ip"] = True
        self.refused(remote, "RemoteIP", "reserved")
        read_kinds(one_kind({"RemoteIP": {"type": "string"}}), "f.json")  # a client's field otherwise

    def test_bad_names(self) -> None:
        self.refused({"kinds": {"Level-Up": {"schema": {"properties": {"A": {"type": "integer"}}}}}},
                     "'Level-Up'", "a-z")
        self.refused({"kinds": {"batch": {"schema": {"properties": {"A": {"type": "integer"}}}}}}, "batch")
        self.refused(one_kind({"A": {"type": "integer"}}, table="Track Events"), "\"table\"")
        self.refused(one_kind({"A": {"type": "integer"}}, table="TrackSchemaVersion"), "track's own")
        self.refused(one_kind({"a b": {"type": "integer"}}), "property 'a b'")

    def test_shared_table(self) -> None:
        schema = {"properties": {"A": {"type": "integer"}}}
        self.refused({"kinds": {"a": {"table": "T", "schema": schema}, "b": {"table": "T", "schema": schema}}},
                     "'a'", "'b'", "table T")

    def test_number_rules(self) -> None:
        self.refused(one_kind({"P": {"type": "number", "multipleOf": 0.25}}), "property 'P'", "multipleOf")
        self.refused(one_kind({"P": {"type": "integer", "minimum": 1.5}}), "minimum", "whole")
        self.refused(one_kind({"P": {"type": "integer", "maximum": 2**64}}), "maximum", "64-bit")
        self.refused(one_kind({"P": {"type": "integer", "minimum": 5, "maximum": 1}}), "greater")
        self.refused(one_kind({"P": {"type": "number", "maximum": 10**20}}), "DECIMAL(19,4)")
        self.refused(one_kind({"P": {"type": "integer", "minimum": "x"}}), "'minimum'", "a number")

    def test_string_rules(self) -> None:
        self.refused(one_kind({"S": {"type": "string", "maxLength": 0}}), "'maxLength'")
        self.refused(one_kind({"S": {"type": "string", "enum": []}}), "'enum'")
        self.refused(one_kind({"S": {"type": "string", "enum": ["abc"], "maxLength": 2}}), "longer than maxLength")
        self.refused(one_kind({"S": {"type": "string", "pattern": "("}}), "'pattern'", "regular expression")
        self.refused(one_kind({"S": {"type": "integer", "maxLength": 3}}), "property 'S'", "'maxLength'")

    def test_defaults(self) -> None:
        self.refused(one_kind({"B": {"type": "boolean", "default": "no"}}), "'default'", "true or false")
        self.refused(one_kind({"B": {"type": "integer", "default": 1}}, ("B",)), "'default'", "required")
        self.refused(one_kind({"S": {"type": "string", "enum": ["a"], "default": "b"}}), "'default'", "enum")
        prop = read_kinds(one_kind({"N": {"type": "integer", "default": 7}}), "f.json")[0]["k"].properties[0]
        self.assertEqual((prop.has_default, prop.default), (True, 7))

    def test_not_json(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("{kinds:")
        with self.assertRaises(EventsFileError) as caught:
            served_kinds(path)
        self.assertIn("not JSON", str(caught.exception))
        with self.assertRaises(EventsFileError) as missing:
            served_kinds(os.path.join(path, "nope.json"))
        self.assertIn("cannot be read", str(missing.exception))

    def test_nothing_to_serve(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            json.dump({"kinds": {}, "original_kinds": False}, f)
        with self.assertRaises(EventsFileError) as caught:
            served_kinds(path)
        self.assertIn("nothing to serve", str(caught.exception))


class ScaleTests(SynchronousTestCase):
    def test_scale_fits_the_column(self) -> None:
        """DECIMAL(19, scale): 18 places at most, so a digit stays before the point."""
        prop = read_kinds(one_kind({"P": {"type": "number", "multipleOf": "1e-18"}}), "f.json")[0]["k"].properties[0]
        self.assertEqual(prop.scale, 18)
        with self.assertRaises(EventsFileError) as caught:
            read_kinds(one_kind({"P": {"type": "number", "multipleOf": "1e-19"}}), "f.json")
        self.assertIn("1e-18", str(caught.exception))
