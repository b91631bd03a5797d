"""CORS for browser clients and the OpenAPI document, in memory."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from typing import Any

import treq
from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers

from track.fields.kinds import KINDS
from track.fields.tables import KindTables
from track.pipeline.batcher import Batcher
from track.test.events.example import level_up_kinds
from track.test.web.test_app import Database, HeaderDict, stub_treq
from track.web.app import TrackApp
from track.web.clients.cors import CORS

URL = "http://track.test/api/1.0/track/user/"
BATCH_URL = "http://track.test/api/1.0/track/batch"
CORS_HEADERS = ("access-control-allow-origin", "access-control-allow-methods",
                "access-control-allow-headers", "access-control-max-age",
                "access-control-expose-headers", "access-control-allow-credentials")


class CORSTests(SynchronousTestCase):
    def make(self, *origins: str) -> Any:
        clock = Clock()
        self.db = Database()
        app = TrackApp(Batcher(self.db.insert, clock, insert_together=self.atomic_insert), clock,
                       cors=CORS(origins))
        self.treq = stub_treq(app.resource())
        self.clock = clock

    def atomic_insert(self, work: Sequence[tuple[Any, Sequence[Any]]]) -> Any:
        for event, rows in work:
            self.db.insert(event, rows)
        return succeed([])

    def request(self, method: str, origin: str | None, url: str = URL, data: bytes | None = None,
                headers: dict[str, str] | None = None) -> Any:
        sent: HeaderDict = {}
        sent.update(headers or {})
        if origin:
            sent["Origin"] = origin
        if data is None and method == "POST":
            data = b"ProfileID=1&Region=eu"
        d = self.treq.request(method, url, headers=sent, data=data)
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
                                headers={"Access-Control-Request-Method": "POST",
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
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(response.code, 201)
        self.assertEqual(self.cors_headers(response)["access-control-allow-origin"], ["https://game.example"])

    def test_other_origins_get_no_cors_headers_at_all(self) -> None:
        self.make("https://game.example")
        for method in ("OPTIONS", "POST"):
            response = self.request(method, "https://evil.example",
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
            self.assertEqual(self.cors_headers(response), {}, method)
        self.assertEqual(self.request("OPTIONS", "https://evil.example").code, 204)

    def test_star_allows_any_origin_but_never_with_credentials(self) -> None:
        self.make("*")
        for method in ("OPTIONS", "POST"):
            response = self.request(method, "https://anything.example")
            headers = self.cors_headers(response)
            self.assertEqual(headers["access-control-allow-origin"], ["https://anything.example"])
            self.assertNotIn("access-control-allow-credentials", headers)
        self.assertEqual(response.code, 201)
        self.assertNotIn("access-control-allow-credentials", self.cors_headers(self.request("POST", "*")))

    def test_a_named_origin_may_send_credentials(self) -> None:
        # A JSON sendBeacon is always credentialed: its preflight needs this.
        self.make("*", "https://game.example")
        for method in ("OPTIONS", "POST"):
            headers = self.cors_headers(self.request(method, "https://game.example"))
            self.assertEqual(headers["access-control-allow-credentials"], ["true"], method)
            self.assertEqual(headers["access-control-allow-origin"], ["https://game.example"])

    def test_the_batch_endpoint_answers_preflights(self) -> None:
        self.make("https://game.example")
        for url in (BATCH_URL, BATCH_URL + "/"):
            response = self.request("OPTIONS", "https://game.example", url,
                                    headers={"Access-Control-Request-Method": "POST",
                                       "Access-Control-Request-Headers": "content-type"})
            self.assertEqual(response.code, 204)
            self.assertEqual(response.headers.getRawHeaders("allow"), ["POST, OPTIONS"])
            headers = self.cors_headers(response)
            self.assertEqual(headers["access-control-allow-origin"], ["https://game.example"])
            self.assertEqual(headers["access-control-allow-headers"], ["content-type"])
            self.assertEqual(headers["access-control-allow-credentials"], ["true"])

    def test_a_post_from_an_origin_not_allowed_is_403_and_stores_nothing(self) -> None:
        # Forms, no-cors fetches and text/plain beacons need no preflight: the
        # browser delivers them whatever the CORS headers say.
        self.make("https://game.example")
        bodies = {
            "application/x-www-form-urlencoded": b"ProfileID=1&Region=eu",
            "text/plain": b'{"ProfileID": 1, "Region": "eu"}',
            "multipart/form-data; boundary=x": b'--x\r\nContent-Disposition: form-data; name="ProfileID"\r\n\r\n1'
                                               b"\r\n--x--\r\n",
        }
        for origin in ("https://evil.example", "null", "https://game.example.evil.example"):
            for ctype, body in bodies.items():
                response = self.request("POST", origin, data=body, headers={"Content-Type": ctype})
                self.assertEqual(response.code, 403, (origin, ctype))
                self.assertEqual(json.loads(self.successResultOf(response.content())),
                                 {"error": "origin not allowed", "origin": origin})
                self.assertEqual(self.cors_headers(response), {})
            batch = b'{"events": [{"type": "user", "ProfileID": 1, "Region": "eu"}]}'
            response = self.request("POST", origin, BATCH_URL, batch, headers={"Content-Type": "text/plain"})
            self.assertEqual(response.code, 403)
        self.assertEqual(self.db.rows, {})
        response = self.request("POST", "https://game.example", BATCH_URL, batch,
                                headers={"Content-Type": "text/plain"})
        self.assertEqual(response.code, 201, self.successResultOf(response.content()))
        self.assertEqual(list(self.db.rows), ["UserEvent"])

    def test_requests_without_an_origin_are_not_browsers_and_pass(self) -> None:
        self.make("https://game.example")
        self.assertEqual(self.request("POST", None).code, 201)
        self.make()  # no --cors-origin: no origin is refused
        self.assertEqual(self.request("POST", "https://evil.example").code, 201)

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
        for name, kind in KINDS.items():
            op = self.doc["paths"][f"/api/1.0/track/{name}/"]["post"]
            for media in ("application/x-www-form-urlencoded", "application/json", "text/plain",
                          "multipart/form-data"):
                schema = op["requestBody"]["content"][media]["schema"]
                self.assertEqual(list(schema["properties"]), [*(f.name for f in kind.fields), "Timestamp"])
                self.assertEqual(schema["required"], [f.name for f in kind.fields if f.required])
                self.assertIs(schema["additionalProperties"], False)
                for f in kind.fields:
                    if f.type == "string":
                        self.assertEqual(schema["properties"][f.name]["maxLength"], f.max_length)
            self.assertEqual(set(op["responses"]), {"201", "400", "403", "408", "413", "415", "429", "500", "503"})
            self.assertIn("1234", op["requestBody"]["description"])
            self.assertIn("Track-Message-Id", op["responses"]["201"]["headers"])
            self.assertEqual(set(op["responses"]["503"]["headers"]), {"Track-Message-Id", "Retry-After"})

    def test_the_batch_endpoint_its_items_and_its_answers(self) -> None:
        op = self.doc["paths"]["/api/1.0/track/batch/"]["post"]
        self.assertEqual(set(op["requestBody"]["content"]), {"application/json", "text/plain", "application/x-ndjson"})
        envelope = op["requestBody"]["content"]["application/json"]["schema"]
        self.assertEqual(envelope["required"], ["events"])
        items = envelope["properties"]["events"]["items"]["oneOf"]
        self.assertEqual([i["properties"]["type"]["enum"] for i in items], [[k] for k in KINDS])
        for item, kind in zip(items, KINDS.values(), strict=True):
            self.assertEqual(list(item["properties"])[1:], [*(f.name for f in kind.fields), "Timestamp"])
            self.assertEqual(item["required"], ["type", *(f.name for f in kind.fields if f.required)])
        self.assertEqual(set(op["responses"]), {"201", "400", "403", "408", "413", "415", "429", "500", "503"})
        self.assertEqual(op["responses"]["201"]["content"]["application/json"]["schema"]["required"],
                         ["stored", "message_ids"])
        self.assertIn("Retry-After", op["responses"]["503"]["headers"])
        refused = self.doc["components"]["schemas"]["Error"]["properties"]["events"]["items"]["$ref"]
        self.assertEqual(self.doc["components"]["schemas"][refused.rsplit("/", 1)[1]]["required"], ["index"])
        self.assertEqual(set(self.doc["components"]["headers"]), {"Track-Message-Id", "Retry-After"})
        for name in ("fields", "detail", "retry_after", "max_bytes", "max_events", "timeout_seconds", "origin"):
            self.assertIn(name, self.doc["components"]["schemas"]["Error"]["properties"])

    def test_limits_match_the_validator(self) -> None:
        json_props = self.doc["paths"]["/api/1.0/track/purchase/"]["post"]["requestBody"]["content"][
            "application/json"]["schema"]["properties"]
        self.assertEqual(json_props["ProfileID"]["oneOf"][0],
                         {"type": "integer", "minimum": -2**31, "maximum": 2**31 - 1})
        self.assertEqual(json_props["Region"]["pattern"], "^[A-Za-z]{2,16}$")
        self.assertEqual(json_props["Currency"]["maxLength"], 3)


class OpenAPICachingTests(SynchronousTestCase):
    """Every tab of track.js fetches the document (about 100 KB with a
    declared kind or two): gzipped when asked, and a 304 while unchanged."""

    def setUp(self) -> None:
        clock = Clock()
        self.kinds = KindTables(KINDS)
        app = TrackApp(Batcher(Database().insert, clock), clock, self.kinds, cors=CORS(["https://game.example"]))
        self.treq = stub_treq(app.resource())

    def get(self, **headers: str) -> tuple[Any, bytes]:
        """Through the agent, not treq's client, which asks for gzip itself
        and hides that it did."""
        d = self.treq.agent.request(b"GET", b"http://track.test/api/1.0/openapi.json",
                                    Headers({k: [v] for k, v in headers.items()}))
        self.treq.flush()
        response = self.successResultOf(d)
        return response, self.successResultOf(treq.content(response))

    def test_gzip_etag_and_304(self) -> None:
        response, plain = self.get(Origin="https://game.example")
        self.assertEqual(response.code, 200)
        self.assertEqual(json.loads(plain)["paths"].keys(), {f"/api/1.0/track/{k}/" for k in [*KINDS, "batch"]})
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])
        self.assertEqual(response.headers.getRawHeaders("cache-control"), ["no-cache"])
        self.assertEqual(response.headers.getRawHeaders("vary"), ["Origin, Accept-Encoding"])
        self.assertEqual(response.headers.getRawHeaders("access-control-allow-origin"), ["https://game.example"])
        (etag,) = response.headers.getRawHeaders("etag")
        zipped, body = self.get(**{"Accept-Encoding": "gzip, deflate, br"})
        self.assertEqual(zipped.headers.getRawHeaders("content-encoding"), ["gzip"])
        self.assertEqual(gzip.decompress(body), plain)
        self.assertLess(len(body), len(plain) / 5)
        (zipped_etag,) = zipped.headers.getRawHeaders("etag")
        self.assertEqual(zipped_etag, etag[:-1] + '-gzip"')
        for tag in (etag, zipped_etag):
            response, body = self.get(**{"If-None-Match": tag, "Accept-Encoding": "gzip"})
            self.assertEqual((response.code, body), (304, b""))

    def test_a_new_kind_is_a_new_document_and_tag(self) -> None:
        """What a SIGHUP that declares a kind does: the old tag gets the new document."""
        response, _ = self.get()
        (etag,) = response.headers.getRawHeaders("etag")
        self.kinds.serve(level_up_kinds(self.mktemp()))
        response, body = self.get(**{"If-None-Match": etag})
        self.assertEqual(response.code, 200)
        self.assertIn("/api/1.0/track/level_up/", json.loads(body)["paths"])
        self.assertNotEqual(response.headers.getRawHeaders("etag"), [etag])
