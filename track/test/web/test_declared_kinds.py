"""Kinds from an events file, served in memory: the route, its 400s, the
batch's "type", the 404's list, kinds added and removed while running, and
the OpenAPI document (the original four's unchanged)."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

import track.test
from track.fields.kinds import KINDS
from track.fields.tables import KindTables
from track.pipeline.batcher import Batcher
from track.test.events.example import BAD, BAD_WORDS, BIG, GOOD, LEVEL_UP, level_up_kinds
from track.test.web.test_app import Database, HeaderDict, stub_treq
from track.web.app import TrackApp
from track.web.openapi import openapi_document

API = "http://track.test/api/1.0"
URL = f"{API}/track"
FORM: HeaderDict = {"Content-Type": "application/x-www-form-urlencoded"}
JSON: HeaderDict = {"Content-Type": "application/json"}
RECEIVED = datetime(2023, 11, 14, 22, 13, 20)
ORIGINAL_DOCUMENT = os.path.join(os.path.dirname(track.test.__file__), "fixtures", "openapi", "openapi-51a75b9.json.gz")


class DeclaredKindsTests(SynchronousTestCase):
    def make(self, **top: Any) -> None:
        self.kinds = KindTables(level_up_kinds(self.mktemp(), **top))
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.db = Database()
        batcher = Batcher(self.db.insert, self.clock, flush_interval=0.002, insert_together=self.together)
        self.app = TrackApp(batcher, self.clock, self.kinds)
        self.treq = stub_treq(self.app.resource())

    def setUp(self) -> None:
        self.make()

    def together(self, work: Sequence[tuple[Any, Sequence[Any]]]) -> Any:
        for kind, rows in work:
            self.db.insert(kind, rows)
        return succeed([])

    def request(self, method: str, path: str, body: Any = None, headers: HeaderDict | None = None) -> Any:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        d = self.treq.request(method, f"{URL}/{path}", data=data, headers=headers or JSON)
        self.treq.flush()
        self.clock.advance(0.002)
        self.treq.flush()
        response = self.successResultOf(d)
        return response.code, self.successResultOf(response.content())

    def post(self, path: str, body: Any, headers: HeaderDict | None = None) -> tuple[int, Any]:
        code, content = self.request("POST", path, body, headers)
        return code, json.loads(content) if content else None

    def test_a_declared_kind_is_stored_with_every_value(self) -> None:
        self.assertEqual(self.post("level_up/", {**GOOD, "MessageID": "lu-1"}), (201, None))
        text = {k: "true" if v is True else str(v) for k, v in GOOD.items()}
        self.assertEqual(self.post("level_up", urlencode({**text, "MessageID": "lu-2"}).encode(), FORM), (201, None))
        rows = self.db.rows["LevelUpEvent"]
        expected = (BIG, 7, "mage", "Zoné 1", Decimal("12.50"), True, datetime(2026, 12, 7, 15, 4, 5, 250000),
                    "ABC-12", "grand master")
        self.assertEqual([r[:-1] for r in rows], [(*expected, "lu-1"), (*expected, "lu-2")])
        self.assertEqual(rows[0][-1], RECEIVED)

    def test_400_names_every_bad_field_with_its_words(self) -> None:
        code, body = self.post("level_up/", {**BAD, "Bogus": 1})
        self.assertEqual(code, 400)
        self.assertEqual(body["error"], "invalid event")
        self.assertEqual(list(body["fields"].items()), [*BAD_WORDS.items(), ("Bogus", "unknown field")])
        code, body = self.post("level_up/", {"Level": "x"})
        self.assertEqual((code, body["fields"]), (400, {"PlayerID": "is required", "Level": "must be an integer"}))
        self.assertNotIn("LevelUpEvent", self.db.rows)

    def test_a_batch_of_mixed_kinds(self) -> None:
        events = [{"type": "level_up", **GOOD}, {"type": "user", "ProfileID": 7, "Region": "eu"},
                  {"type": "level_up", "PlayerID": 1, "Level": 2}]
        code, body = self.post("batch/", {"events": events})
        self.assertEqual((code, body["stored"]), (201, 3))
        self.assertEqual([r[:2] for r in self.db.rows["LevelUpEvent"]], [(BIG, 7), (1, 2)])
        self.assertEqual(self.db.rows["UserEvent"][0][:2], (7, "eu"))
        code, body = self.post("batch/", {"events": [{"type": "level_up", **BAD}, {"type": "levelup"}, {"x": 1}]})
        self.assertEqual(code, 400)
        names = "must be one of session, user, item, purchase, level_up"
        self.assertEqual(body["events"], [{"index": 0, "fields": BAD_WORDS}, {"index": 1, "fields": {"type": names}},
                                          {"index": 2, "fields": {"type": names}}])

    def test_an_unknown_kind_is_404_listing_the_kinds(self) -> None:
        endpoints = [f"/api/1.0/track/{k}/" for k in ("session", "user", "item", "purchase", "level_up")]
        for method, path in (("POST", "level_down/"), ("POST", "level_up/x/"), ("GET", "nothing/"),
                             ("OPTIONS", "nothing"), ("PUT", "Level_Up/")):
            with self.subTest(method=method, path=path):
                code, content = self.request(method, path, b"{}")
                self.assertEqual(code, 404)
                self.assertEqual(json.loads(content), {"error": "not found", "endpoints": endpoints})
        for path in ("/level_up/", "/session/"):  # a doubled slash: no such path, never a 500
            with self.subTest(path=path):
                code, content = self.request("POST", path, b"{}")
                self.assertEqual((code, json.loads(content)), (404, {"error": "not found", "endpoints": endpoints}))
        self.assertEqual(self.request("GET", "level_up/")[0], 405)
        self.assertEqual(self.request("OPTIONS", "level_up/")[0], 204)

    def test_only_the_files_kinds(self) -> None:
        self.make(original_kinds=False)
        code, body = self.post("session/", {"Region": "eu"})
        self.assertEqual((code, body["endpoints"]), (404, ["/api/1.0/track/level_up/"]))
        self.assertEqual(self.request("OPTIONS", "user/")[0], 404)
        self.assertEqual(self.request("GET", "user/")[0], 404)
        code, body = self.post("batch/", {"events": [{"type": "user", "ProfileID": 1, "Region": "eu"}]})
        self.assertEqual(body["events"][0]["fields"], {"type": "must be one of level_up"})
        self.assertEqual(self.post("level_up/", GOOD)[0], 201)
        self.assertEqual(list(self.document()["paths"]), ["/api/1.0/track/level_up/", "/api/1.0/track/batch/"])

    def test_a_file_kind_replaces_user(self) -> None:
        doc = {"kinds": {"user": {"table": "UserEvent", "x-track-remote-ip": True, "schema": {
            "required": ["ProfileID"], "properties": {"ProfileID": {"type": "integer"},
                                                     "Plan": {"type": "string", "enum": ["free", "paid"]}}}}}}
        self.kinds.serve(level_up_kinds(self.mktemp(), doc))
        code, body = self.post("user/", {"ProfileID": 1, "Region": "eu"})
        self.assertEqual((code, body["fields"]), (400, {"Region": "unknown field"}))
        self.assertEqual(self.post("user/", {"ProfileID": 2, "Plan": "paid", "MessageID": "u-2"}), (201, None))
        self.assertEqual([r[:-1] for r in self.db.rows["UserEvent"]], [(2, "paid", "u-2", "127.0.0.1")])
        user = self.document()["paths"]["/api/1.0/track/user/"]["post"]["requestBody"]["content"]
        self.assertEqual(list(user["application/json"]["schema"]["properties"]),
                         ["ProfileID", "Plan", "MessageID", "Timestamp"])

    def test_kinds_added_and_removed_while_running(self) -> None:
        """What a SIGHUP does: the next request sees the new set, and the document too."""
        self.make(original_kinds=False)
        self.assertEqual(self.post("user/", {"ProfileID": 1, "Region": "eu"})[0], 404)
        self.kinds.serve({**KINDS, **self.kinds})
        self.assertEqual(self.post("user/", {"ProfileID": 1, "Region": "eu"})[0], 201)
        self.assertIn("/api/1.0/track/user/", self.document()["paths"])
        self.kinds.serve({"user": KINDS["user"]})
        self.assertEqual(self.post("level_up/", GOOD)[0], 404)
        self.assertEqual(list(self.document()["paths"]), ["/api/1.0/track/user/", "/api/1.0/track/batch/"])

    def test_every_kind_served_has_a_static_route(self) -> None:
        """A path through the `<name>` converter costs about 2 us more a
        request than a static one (a declared kind ran 6% slower than
        session): every kind served, one a SIGHUP adds too, has its own."""
        doc = {"kinds": {"quest_done": {"schema": {"properties": {"QuestID": {"type": "integer"}}}}}}
        self.kinds.serve(level_up_kinds(self.mktemp(), doc))
        urls = self.app.app.url_map.bind("")
        for name in ("session", "purchase", "quest_done"):
            for method in ("POST", "OPTIONS"):
                with self.subTest(name=name, method=method):
                    rule, args = urls.match(f"/api/1.0/track/{name}", method, return_rule=True)
                    self.assertEqual((rule.rule, args), (f"/api/1.0/track/{name}/", {"name": name}))
        rule, _ = urls.match("/api/1.0/track/never_declared/", "POST", return_rule=True)
        self.assertEqual(rule.rule, "/api/1.0/track/<name>/")
        self.assertEqual(self.post("quest_done", {"QuestID": 3, "MessageID": "q-3"}), (201, None))
        self.assertEqual(self.db.rows["QuestDoneEvent"][0][:-1], (3, "q-3"))
        self.kinds.serve(level_up_kinds(self.mktemp()))
        self.assertEqual(self.post("quest_done/", {"QuestID": 4})[0], 404)  # routed still, served no more

    def document(self) -> Any:
        d = self.treq.get(f"{API}/openapi.json")
        self.treq.flush()
        return json.loads(self.successResultOf(self.successResultOf(d).content()))

    def test_the_document_says_every_rule(self) -> None:
        post = self.document()["paths"]["/api/1.0/track/level_up/"]["post"]
        self.assertEqual(post["description"], "A player reached a new level.")
        content = post["requestBody"]["content"]
        typed = content["application/json"]["schema"]
        self.assertEqual(typed["required"], ["PlayerID", "Level"])
        p = typed["properties"]
        self.assertEqual(p["PlayerID"]["oneOf"][0], {"type": "integer", "minimum": 0, "maximum": BIG})
        self.assertEqual(p["Level"]["oneOf"][0], {"type": "integer", "minimum": 1, "maximum": 100})
        self.assertEqual(p["Level"]["description"], "The new level.")
        self.assertEqual(p["Class"], {"type": "string", "enum": ["warrior", "mage", "rogue", ""],
                                      "x-track-message": BAD_WORDS["Class"]})
        self.assertEqual(p["Zone"], {"type": "string", "maxLength": 64})
        self.assertEqual(p["Reward"]["oneOf"][0], {
            "type": "number", "multipleOf": 0.01, "minimum": 0, "maximum": 1000000,
            "description": "written as the text form is: no exponent, at most 2 digits after the point"})
        self.assertEqual(p["Hardcore"]["default"], False)
        self.assertEqual((p["At"]["format"], p["At"]["x-track-message"]), ("date-time", BAD_WORDS["At"]))
        self.assertEqual(p["Guild"], {"type": "string", "maxLength": 12, "pattern": "^$|^[A-Z]{3}-[0-9]+$"})
        self.assertEqual(p["Title"]["x-track-message"], "must be lower-case letters and spaces")
        form = content["application/x-www-form-urlencoded"]["schema"]["properties"]
        self.assertEqual(form["Level"], {"type": "string", "pattern": "^(?:0*(?:[1-9]|[1-9][0-9]{1}|100))$",
                                         "description": "The new level. integer 1..100"})
        self.assertEqual(form["Hardcore"]["default"], "false")
        self.assertEqual(form["Reward"]["description"], "a decimal number between 0 and 1000000")

    def test_the_original_fours_document_is_as_it_was(self) -> None:
        """As 51a75b9 published it, but for item's IsRented, which now says its default."""
        with gzip.open(ORIGINAL_DOCUMENT) as f:
            before = json.load(f)
        now = json.loads(json.dumps(openapi_document(KINDS, "/api/1.0/track", 65536, 1000, 1048576)))
        now["info"]["version"] = "<version>"
        rented = 0
        for path, item in now["paths"].items():
            for media, content in item["post"]["requestBody"]["content"].items():
                schema = content["schema"]
                events = [schema] if "oneOf" not in schema.get("properties", {}).get("events", {}).get("items", {}) \
                    else schema["properties"]["events"]["items"]["oneOf"]
                for event in events:
                    field = event.get("properties", {}).get("IsRented")
                    if field is not None:
                        self.assertIn(field.pop("default"), (False, "false"), (path, media))
                        rented += 1
        self.assertEqual(rented, 6)  # item's form, multipart, JSON, text/plain; the batch's JSON, text/plain
        for path in before["paths"]:
            self.assertEqual(now["paths"][path], before["paths"][path], path)
        self.assertEqual(now, before)
        self.assertEqual(list(LEVEL_UP["kinds"]), ["level_up"])
