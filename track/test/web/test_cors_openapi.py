"""CORS for browser clients and the OpenAPI document, in memory."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from track.fields.kinds import EVENT_TYPES
from track.pipeline.batcher import Batcher
from track.test.web.test_app import Database, HeaderDict, stub_treq
from track.web.app import TrackApp
from track.web.cors import CORS

URL = "http://track.test/api/1.0/track/user/"
CORS_HEADERS = ("access-control-allow-origin", "access-control-allow-methods",
                "access-control-allow-headers", "access-control-max-age",
                "access-control-expose-headers")


class CORSTests(SynchronousTestCase):
    def make(self, *origins: str) -> Any:
        clock = Clock()
        app = TrackApp(Batcher(Database().insert, clock), clock, cors=CORS(origins))
        self.treq = stub_treq(app.resource())
        self.clock = clock

    def request(self, method: str, origin: str | None, **headers: str) -> Any:
        if origin:
            headers["Origin"] = origin
        sent: HeaderDict = {}
        sent.update(headers)
        d = self.treq.request(method, URL, headers=sent,
                              data=b"ProfileID=1&Region=eu" if method == "POST" else None)
        self.treq.flush()
        self.clock.advance(0)
        self.treq.flush()
        return self.successResultOf(d)

    def cors_headers(self, response: Any) -> dict[str, list[str]]:
        return {h: response.headers.getRawHeaders(h) for h in CORS_HEADERS
                if response.headers.hasHeader(h)}

    def test_preflight_from_an_allowed_origin(self) -> None:
        self.make("https://game.example", "https://web.example")
        response = self.request("OPTIONS", "https://web.example",
                                **{"Access-Control-Request-Method": "POST",
                                   "Access-Control-Request-Headers": "content-type, x-client"})
        self.assertEqual(response.code, 204)
        headers = self.cors_headers(response)
        self.assertEqual(headers["access-control-allow-origin"], ["https://web.example"])
        self.assertIn("POST", headers["access-control-allow-methods"][0])
        self.assertEqual(headers["access-control-allow-headers"], ["content-type, x-client"])
        self.assertEqual(headers["access-control-max-age"], ["86400"])

    def test_answers_to_an_allowed_origin_carry_allow_origin(self) -> None:
        self.make("https://game.example")
        response = self.request("POST", "https://game.example",
                                **{"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(response.code, 201)
        self.assertEqual(self.cors_headers(response)["access-control-allow-origin"], ["https://game.example"])

    def test_other_origins_get_no_cors_headers_at_all(self) -> None:
        self.make("https://game.example")
        for method in ("OPTIONS", "POST"):
            response = self.request(method, "https://evil.example",
                                    **{"Content-Type": "application/x-www-form-urlencoded"})
            self.assertEqual(self.cors_headers(response), {}, method)
        self.assertEqual(self.request("OPTIONS", "https://evil.example").code, 204)

    def test_star_allows_any_origin(self) -> None:
        self.make("*")
        response = self.request("OPTIONS", "https://anything.example")
        self.assertEqual(self.cors_headers(response)["access-control-allow-origin"], ["https://anything.example"])

    def test_without_cors_origins_nothing_is_added(self) -> None:
        self.make()
        response = self.request("OPTIONS", "https://game.example")
        self.assertEqual((response.code, self.cors_headers(response)), (204, {}))

    def test_wrong_method_allow_lists_post_and_options(self) -> None:
        self.make()
        response = self.request("DELETE", None)
        self.assertEqual(response.code, 405)
        self.assertEqual(response.headers.getRawHeaders("allow"), ["POST, OPTIONS"])


class OpenAPITests(SynchronousTestCase):
    def setUp(self) -> None:
        clock = Clock()
        treq = stub_treq(TrackApp(Batcher(Database().insert, clock), clock, max_body=1234).resource())
        d = treq.get("http://track.test/api/1.0/openapi.json")
        treq.flush()
        response = self.successResultOf(d)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])
        self.doc = json.loads(self.successResultOf(response.content()))

    def test_every_endpoint_and_field_is_described_from_the_field_tables(self) -> None:
        self.assertTrue(self.doc["openapi"].startswith("3."))
        for kind, event in EVENT_TYPES.items():
            op = self.doc["paths"][f"/api/1.0/track/{kind}/"]["post"]
            for media in ("application/x-www-form-urlencoded", "application/json"):
                schema = op["requestBody"]["content"][media]["schema"]
                self.assertEqual(list(schema["properties"]), [f.name for f in event.fields])
                self.assertEqual(schema["required"], [f.name for f in event.fields if f.required])
                self.assertIs(schema["additionalProperties"], False)
                for f in event.fields:
                    if f.type == "string":
                        self.assertEqual(schema["properties"][f.name]["maxLength"], f.max_length)
            self.assertEqual(set(op["responses"]), {"201", "400", "408", "413", "415", "429", "503"})
            self.assertIn("1234", op["requestBody"]["description"])

    def test_limits_match_the_validator(self) -> None:
        json_props = self.doc["paths"]["/api/1.0/track/purchase/"]["post"]["requestBody"]["content"][
            "application/json"]["schema"]["properties"]
        self.assertEqual(json_props["ProfileID"]["oneOf"][0],
                         {"type": "integer", "minimum": -2**31, "maximum": 2**31 - 1})
        self.assertEqual(json_props["Region"]["pattern"], "^[A-Za-z]{2,16}$")
        self.assertEqual(json_props["Currency"]["maxLength"], 3)
