"""The OpenAPI document held against what the server accepts, field by field.

Clients learn the field rules from /api/1.0/openapi.json, so it must say
exactly what the server takes: for every field of every kind, as a form, as
JSON and in a batch, a value the document allows is stored (201) and a value
it forbids is refused (400 naming the field).  The document is read the way
a client should read it: `pattern` with re.fullmatch, `maxLength` in
characters, OpenAPI 3.0's boolean exclusiveMinimum/exclusiveMaximum.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from track.fields.kinds import KINDS, Kind
from track.fields.tables import KindTables
from track.pipeline.batcher import Batcher
from track.test.web.test_app import Database, HeaderDict, stub_treq
from track.web.app import TrackApp

API = "http://track.test/api/1.0"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
# A valid value of each required field, as text (good for a form and JSON).
VALID = {"Region": "eu", "SessionID": "s", "RemoteIP": "10.0.0.1", "SessionType": "login", "ProfileID": "7",
         "ItemName": "sword", "ItemType": "weapon", "IsUGC": "true", "Currency": "EUR", "GrossAmount": "1.5",
         "NetAmount": "1", "PaymentProvider": "card", "Product": "gems", "PlayerID": "1", "Level": "5"}
# differing_executors: test_openapi_declared runs these tests again, on a subclass.
SUPPRESSED = [HealthCheck.too_slow, HealthCheck.differing_executors]
WINDOW = ("in the future", "older than")  # a Timestamp the document allows, outside the server's window


def allows(schema: dict[str, Any], value: Any) -> bool:
    """Whether `value` (a decoded JSON value; Decimal for a number written
    with a point) satisfies `schema`, for the keywords the document uses."""
    if "oneOf" in schema:
        return sum(allows(s, value) for s in schema["oneOf"]) == 1
    kind = schema["type"]
    if kind == "string":
        if type(value) is not str or (schema.get("x-bmp-only") and any(c > "\uffff" for c in value)):
            return False
        return (len(value) <= schema.get("maxLength", len(value)) and len(value) >= schema.get("minLength", 0)
                and ("pattern" not in schema or re.fullmatch(schema["pattern"], value) is not None)
                and ("enum" not in schema or value in schema["enum"]))
    if kind == "boolean":
        return type(value) is bool
    if kind == "integer" and type(value) is not int:
        return False
    if kind == "number" and type(value) not in (int, Decimal):
        return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and (value <= low if schema.get("exclusiveMinimum") else value < low):
        return False
    if high is not None and (value >= high if schema.get("exclusiveMaximum") else value > high):
        return False
    if "multipleOf" in schema:  # as written: no more fraction digits than the step has
        step = Decimal(repr(schema["multipleOf"]))
        if type(value) is Decimal and value.as_tuple().exponent < step.as_tuple().exponent:  # type: ignore[operator]
            return False
    return True


def values_of(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values `schema` allows."""
    if "oneOf" in schema:
        return st.one_of([values_of(s) for s in schema["oneOf"]])
    kind = schema["type"]
    if kind == "string":
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda v: len(v) <= schema.get(
                "maxLength", len(v)))
        return st.text(min_size=schema.get("minLength", 0), max_size=schema["maxLength"])
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        return st.integers(schema["minimum"], schema["maximum"])
    bound = Decimal(schema["maximum"])
    return st.decimals(-bound, bound, places=4, allow_nan=False, allow_infinity=False).filter(
        lambda d: allows(schema, d))


# Values to try against every field, kept where the document forbids them.
ANYTHING = st.one_of(
    st.text(max_size=70), st.from_regex(r"-?0*[0-9]{1,22}(\.[0-9]{0,6})?", fullmatch=True),
    st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]*)?([Zz]|[+-][0-9]{2}:?[0-9]{2})?",
                  fullmatch=True),
    st.integers(-2**63, 2**63), st.sampled_from([-2**31 - 1, 2**31, 10**15, -10**15, 10**16]), st.booleans(),
    st.decimals(-10**16, 10**16, places=6, allow_nan=False, allow_infinity=False),
    st.text(min_size=65, max_size=300), st.sampled_from(["", "yes", "TRUE ", " 1", "-", "1e3", "0x10"]),
)


def as_json(value: Any) -> str:
    """A value as JSON text; a Decimal as the number it is, written out."""
    return format(value, "f") if type(value) is Decimal else json.dumps(value)


class DocumentHoldsTests(SynchronousTestCase):
    def served(self) -> Mapping[str, Kind]:
        """The kinds served (and drawn from)."""
        return KINDS

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.db = Database()
        self.kinds = self.served()
        self.app = TrackApp(Batcher(self.db.insert, self.clock, flush_interval=0,
                                    insert_together=self.atomic_insert), self.clock, self.kinds)
        self.treq = stub_treq(self.app.resource())
        self.doc = self.get_document()

    def atomic_insert(self, work: Sequence[tuple[Any, Sequence[Any]]]) -> Any:
        for event, rows in work:
            self.db.insert(event, rows)
        return succeed([])

    def get_document(self) -> Any:
        d = self.treq.get(f"{API}/openapi.json")
        self.treq.flush()
        return json.loads(self.successResultOf(self.successResultOf(d).content()))

    def schema(self, kind: str, media: str) -> dict[str, Any]:
        schema: dict[str, Any] = self.doc["paths"][f"/api/1.0/track/{kind}/"]["post"]["requestBody"]["content"][
            FORM if media == "form" else JSON]["schema"]
        return schema

    def post(self, kind: str, media: str, name: str, value: Any) -> tuple[int, dict[str, str]]:
        """One event with `name` = `value` (and valid required fields):
        the status and the fields the answer names."""
        fields = {k: v for k, v in VALID.items() if k in self.schema(kind, "json")["properties"] and k != name}
        if media == "form":
            body, content_type, path = urlencode({**fields, name: value}), FORM, kind
        else:
            members = [f'"{k}": {json.dumps(v)}' for k, v in fields.items()] + [f"{json.dumps(name)}: {as_json(value)}"]
            if media == "batch":
                members.insert(0, f'"type": "{kind}"')
                body, content_type, path = '{"events": [{' + ", ".join(members) + "}]}", JSON, "batch"
            else:
                body, content_type, path = "{" + ", ".join(members) + "}", JSON, kind
        headers: HeaderDict = {"Content-Type": content_type}
        d = self.treq.post(f"{API}/track/{path}/", data=body.encode(), headers=headers)
        self.treq.flush()
        self.clock.advance(0)
        self.treq.flush()
        response = self.successResultOf(d)
        answer = self.successResultOf(response.content())
        if response.code != 400:
            return response.code, {}
        refused = json.loads(answer)
        return 400, (refused["events"][0] if media == "batch" else refused).get("fields", {})

    def check(self, kind: str, media: str, name: str, value: Any, allowed: bool) -> None:
        code, fields = self.post(kind, media, name, value)
        if allowed and name == "Timestamp" and code == 400 and list(fields) == ["Timestamp"]:
            self.assertTrue(any(w in fields["Timestamp"] for w in WINDOW), fields)  # not a format it allows
            return
        self.assertEqual((code, list(fields)), (201, []) if allowed else (400, [name]),
                         f"{kind} {media} {name}={value!r}")

    @settings(max_examples=500, deadline=None, suppress_health_check=SUPPRESSED)
    @given(st.data())
    def test_every_value_the_document_allows_is_stored(self, data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(self.drawn()))
        media = data.draw(st.sampled_from(["form", "json", "batch"]))
        properties = self.schema(kind, media)["properties"]
        name = data.draw(st.sampled_from(sorted(properties)))
        value = data.draw(values_of(properties[name]))
        assume(not self.unsaid(kind, name, value))
        self.check(kind, media, name, value, allowed=True)

    def drawn(self) -> list[str]:
        """The kinds the property tests draw from."""
        return sorted(self.kinds)

    def unsaid(self, kind: str, name: str, value: Any) -> bool:
        """A value the document allows that the server refuses by a rule
        JSON Schema cannot say (none for the original four)."""
        return False

    @settings(max_examples=500, deadline=None, suppress_health_check=SUPPRESSED)
    @given(st.data())
    def test_every_value_the_document_forbids_is_refused_naming_the_field(self, data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(self.drawn()))
        media = data.draw(st.sampled_from(["form", "json", "batch"]))
        properties = self.schema(kind, media)["properties"]
        name = data.draw(st.sampled_from(sorted(properties)))
        value = data.draw(ANYTHING)
        if media == "form":
            assume(type(value) is str)
        assume(not allows(properties[name], value))
        self.check(kind, media, name, value, allowed=False)

    @settings(max_examples=200, deadline=None, suppress_health_check=SUPPRESSED)
    @given(st.data())
    def test_sent_at_as_the_document_says(self, data: st.DataObject) -> None:
        """Track-Sent-At (any POST) and a batch body's SentAt: allowed is
        taken, forbidden is a 400 naming SentAt."""
        in_body = data.draw(st.booleans())
        if in_body:
            batch = self.doc["paths"]["/api/1.0/track/batch/"]["post"]["requestBody"]["content"][JSON]["schema"]
            schema = batch["properties"]["SentAt"]
        else:
            (parameter,) = self.doc["paths"]["/api/1.0/track/user/"]["post"]["parameters"]
            self.assertEqual((parameter["name"], parameter["in"]), ("Track-Sent-At", "header"))
            schema = parameter["schema"]
        allowed = data.draw(st.booleans())
        if allowed:
            value = data.draw(values_of(schema))
        else:
            value = data.draw(ANYTHING)
            assume(not allows(schema, value) and (in_body or type(value) is str))
            # A header value is visible ASCII (RFC 9110), else the HTTP layer refuses it first.
            assume(in_body or (value.strip() == value and all(" " <= c <= "~" for c in value)))
        if in_body:
            body = '{"SentAt": ' + as_json(value) + ', "events": [{"type": "user", "ProfileID": 1, "Region": "eu"}]}'
            headers: HeaderDict = {"Content-Type": JSON}
            path = "batch"
        else:
            body, path = "ProfileID=1&Region=eu", "user"
            headers = {"Content-Type": FORM, "Track-Sent-At": value.encode("utf-8")}
        d = self.treq.post(f"{API}/track/{path}/", data=body.encode(), headers=headers)
        self.treq.flush()
        self.clock.advance(0)
        self.treq.flush()
        response = self.successResultOf(d)
        answer = self.successResultOf(response.content())
        if allowed:
            self.assertEqual(response.code, 201, f"SentAt={value!r}: {answer!r}")
        else:
            self.assertEqual((response.code, list(json.loads(answer).get("fields", {}))), (400, ["SentAt"]),
                             f"SentAt={value!r}: {answer!r}")

    def test_edges_of_every_rule(self) -> None:
        """The values a random search rarely hits, each way."""
        cases = [
            ("user", "ProfileID", ["2147483647", "-2147483648", "-0", "000002147483647"],
             ["2147483648", "-2147483649", "99999999999", "+1", "1.0", ""]),
            ("purchase", "GrossAmount", ["000000000123456789012345.1234", "-0.0001", "0"],
             ["1234567890123456", "1.12345", "1.", ".5", ""]),
            ("item", "IsRented", ["", "True", "0"], ["yes", "2", "true "]),
            ("user", "MessageID", ["", "6f1c2e0a-5d1b-4c1e-9a64-0f3b1c2d3e4f", "a" * 64],
             ["a" * 65, "a b", "\u00e9"]),
            ("user", "Region", ["eu", "A" * 16], ["e", "A" * 17, "e1", ""]),
            ("user", "Timestamp", ["", "1700000000000", "2023-11-14T22:13:20.123456789+00:00"],
             ["2023-11-14T22:13:20", "2023-02-29T00:00:00Z", "1" * 17, "2023-11-14 22:13:20Z"]),
        ]
        for kind, name, good, bad in cases:
            schema = self.schema(kind, "form")["properties"][name]
            for value in good:
                with self.subTest(name=name, value=value):
                    self.assertTrue(allows(schema, value))
                    self.check(kind, "form", name, value, allowed=True)
            for value in bad:
                with self.subTest(name=name, value=value):
                    self.assertFalse(allows(schema, value))
                    self.check(kind, "form", name, value, allowed=False)

    def test_a_3_byte_utf8_column_is_marked(self) -> None:
        """On the original's utf8 columns, emoji are refused, and the document says so."""
        tables = KindTables(KINDS)
        tables.refit({"user": KINDS["user"].with_string_limits({"Message": (45, True)})})
        self.treq = stub_treq(TrackApp(Batcher(self.db.insert, self.clock, flush_interval=0), self.clock,
                                       tables).resource())
        self.doc = self.get_document()
        rule = self.schema("user", "form")["properties"]["Message"]
        self.assertIs(rule["x-bmp-only"], True)
        self.assertNotIn("x-bmp-only", self.schema("user", "form")["properties"]["Referrer"])
        for value, allowed in (("h\u00e9llo \u2603", True), ("h\u00e9llo \U0001f600", False)):
            self.assertEqual(allows(rule, value), allowed)
            self.check("user", "form", "Message", value, allowed)

    def test_message_id_is_not_given_the_region_pattern(self) -> None:
        for kind in KINDS:
            for media in ("form", "json"):
                rule = self.schema(kind, media)["properties"]["MessageID"]
                self.assertNotEqual(rule.get("pattern"), self.schema(kind, media)["properties"]["Region"]["pattern"])
                self.assertTrue(allows(rule, "6f1c2e0a-5d1b-4c1e-9a64-0f3b1c2d3e4f"))

    def test_a_refit_rebuilds_the_document(self) -> None:
        """Wider columns found after start: the document says so at once."""
        tables = KindTables(KINDS)
        self.treq = stub_treq(TrackApp(Batcher(self.db.insert, self.clock), self.clock, tables).resource())
        self.assertEqual(self.get_document()["paths"]["/api/1.0/track/user/"]["post"]["requestBody"]["content"][
            JSON]["schema"]["properties"]["Referrer"]["maxLength"], 64)
        tables.refit({"user": KINDS["user"].with_string_limits({"Referrer": (255, False)})})
        self.assertEqual(self.get_document()["paths"]["/api/1.0/track/user/"]["post"]["requestBody"]["content"][
            JSON]["schema"]["properties"]["Referrer"]["maxLength"], 255)
