"""The HTTP API in memory, through treq and a Clock-driven batcher.

Requests go through a real TrackSite, its bytes pumped in memory the way
treq's StubTreq does it (see TrackSiteAgent).  The insert function here
stands in for the database so each test can decide when (and whether) a
batch commits; storage itself is tested against real SQLite and MariaDB in
test_store and test_e2e.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from treq.client import HTTPClient
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import IConsumer
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import URI, Agent
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IAgentEndpointFactory, IBodyProducer, IResponse
from zope.interface import implementer

from track.fields.kinds import KINDS
from track.pipeline.batcher import Batcher
from track.types import Refusal, Unavailable
from track.web.app import TrackApp
from track.web.clients.clientip import parse_networks
from track.web.http.site import TrackSite

# treq's type for a headers dict: a plain dict[str, str] does not match it.
HeaderDict = dict[str | bytes, str | bytes]

URL = "http://track.test/api/1.0/track"
FORM: HeaderDict = {"Content-Type": "application/x-www-form-urlencoded"}
JSON: HeaderDict = {"Content-Type": "application/json"}
SESSION = "Region=eu&SessionID=s1&RemoteIP=10.0.0.9&SessionType=login&ProfileID=7"
EVENTS = {
    "session": SESSION,
    "user": "ProfileID=7&Region=us&Referrer=ad",
    "item": "ProfileID=7&Region=eu&ItemName=sword&ItemType=weapon&IsUGC=1&PriceGold=10",
    "purchase": ("ProfileID=7&Region=eu&Currency=EUR&GrossAmount=9.99&NetAmount=8.5"
                 "&PaymentProvider=card&Product=gems"),
}


class Database:
    """Commits immediately unless told to hold, fail or reject."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[Any, ...]]] = {}
        self.held: list[Deferred[Any]] = []
        self.hold = False
        self.outcome: Any = None

    def insert(self, event: Any, rows: Sequence[tuple[Any, ...]]) -> Deferred[Any]:
        if isinstance(self.outcome, Exception):
            return fail(self.outcome)
        if self.hold:
            d: Deferred[Any] = Deferred()
            self.held.append(d)
            d.addCallback(lambda r: self._store(event, rows, r))
            return d
        return succeed(self._store(event, rows, self.outcome))

    def _store(self, event: Any, rows: Sequence[tuple[Any, ...]], outcome: Any) -> Any:
        keep = [r for i, r in enumerate(rows) if outcome is None or outcome[i] is None]
        self.rows.setdefault(event.table, []).extend(keep)
        return outcome


SERVER_ADDRESS = IPv4Address("TCP", "127.0.0.1", 80)
CLIENT_ADDRESS = IPv4Address("TCP", "127.0.0.1", 31337)


@implementer(IAgent, IAgentEndpointFactory)
class TrackSiteAgent:
    """An agent whose requests a TrackSite answers, in memory.

    It works as treq.testing.RequestTraversalAgent does: a real Agent
    connects through a MemoryReactorClock, and each connection is pumped to
    the server with twisted.test.iosim.  RequestTraversalAgent can only serve
    a plain twisted.web.server.Site, which would parse multipart bodies
    itself (answering a bad one with a bare 400) and make Twisted's Request
    instead of track's; this one serves the TrackSite that twistd runs.
    """

    def __init__(self, resource: Any) -> None:
        self.reactor = MemoryReactorClock()
        self.site = TrackSite(resource, reactor=self.reactor)
        self.agent = Agent.usingEndpointFactory(self.reactor, endpointFactory=self)
        self.pumps: set[iosim.IOPump] = set()

    def endpointForURI(self, uri: URI) -> TCP4ClientEndpoint:
        return TCP4ClientEndpoint(self.reactor, "127.0.0.1", uri.port)

    def request(self, method: bytes, uri: bytes, headers: Headers | None = None,
                bodyProducer: IBodyProducer | None = None) -> Deferred[IResponse]:
        connections = len(self.reactor.tcpClients)
        response: Deferred[IResponse] = self.agent.request(method, uri, headers, bodyProducer)
        if len(self.reactor.tcpClients) == connections:
            return response  # refused before connecting (a bad URL, say)
        factory = self.reactor.tcpClients[-1][2]
        server = self.site.buildProtocol(CLIENT_ADDRESS)
        client = factory.buildProtocol(SERVER_ADDRESS)
        # Connecting fires the Agent's connection, which writes the request;
        # iosim.connect then pumps those bytes to the server once.
        self.pumps.add(iosim.connect(
            server, iosim.FakeTransport(server, isServer=True, hostAddress=SERVER_ADDRESS, peerAddress=CLIENT_ADDRESS),
            client, iosim.FakeTransport(client, isServer=False, hostAddress=CLIENT_ADDRESS, peerAddress=SERVER_ADDRESS),
        ))
        return response

    def flush(self) -> None:
        """Deliver everything either side has written, as StubTreq.flush()."""
        for pump in list(self.pumps):
            pump.flush()
            if pump.clientIO.disconnected and pump.serverIO.disconnected:
                self.pumps.discard(pump)


@implementer(IBodyProducer)
class WholeBody:
    """A request body written at once, so a request needs no reactor turn
    (as StubTreq's producer)."""

    def __init__(self, body: bytes | str) -> None:
        self.body = body.encode() if isinstance(body, str) else body
        self.length = len(self.body)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        consumer.write(self.body)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class MemoryTreq(HTTPClient):
    """treq's HTTPClient (get, post, request, ...) over a TrackSiteAgent,
    with StubTreq's flush()."""

    def __init__(self, resource: Any) -> None:
        self.agent = TrackSiteAgent(resource)
        super().__init__(self.agent, data_to_body_producer=WholeBody)

    def flush(self) -> None:
        self.agent.flush()


def stub_treq(resource: Any) -> MemoryTreq:
    """A treq client whose requests the resource answers in memory, through
    TrackSite, so its request class and body handling are the ones tested."""
    return MemoryTreq(resource)


class AppTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.db = Database()
        self.batcher = Batcher(self.db.insert, self.clock, batch_size=100, flush_interval=0.002, max_pending=3)
        self.app = TrackApp(self.batcher, self.clock, trusted_proxies=parse_networks(["127.0.0.0/8"]))
        self.treq = stub_treq(self.app.resource())

    def post(self, path: str, body: bytes | str, headers: HeaderDict | None = FORM) -> Any:
        data = body.encode() if isinstance(body, str) else body
        d = self.treq.post(f"{URL}/{path}", data=data, headers=headers)
        return self.finish(d)

    def finish(self, d: Deferred[Any]) -> Any:
        self.treq.flush()
        self.clock.advance(0.002)
        self.treq.flush()
        response = self.successResultOf(d)
        body = self.successResultOf(response.content())
        return response, body

    def error(self, response: Any, body: bytes, code: int) -> Any:
        self.assertEqual(response.code, code, body)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])
        return json.loads(body)

    def test_each_endpoint_answers_201_empty_text_plain(self) -> None:
        for kind, body in EVENTS.items():
            with self.subTest(kind=kind):
                response, content = self.post(f"{kind}/", body)
                self.assertEqual(response.code, 201, content)
                self.assertEqual(content, b"")
                self.assertEqual(response.headers.getRawHeaders("content-type"), ["text/plain; charset=utf-8"])
                self.assertEqual(response.length, 0)
        self.assertEqual(sorted(self.db.rows), ["ItemEvent", "PurchaseEvent", "SessionEvent", "UserEvent"])
        created = datetime(2023, 11, 14, 22, 13, 20)
        (row,) = self.db.rows["SessionEvent"]
        self.assertEqual(row[:7] + row[8:], ("eu", "s1", "10.0.0.9", "login", None, 7, None, created))
        self.assertEqual(self.db.rows["PurchaseEvent"][0][3:5], (Decimal("9.99"), Decimal("8.5")))

    def test_every_answer_names_the_events_message_id(self) -> None:
        response, _ = self.post("user/", "ProfileID=1&Region=eu&MessageID=client-1")
        self.assertEqual(response.headers.getRawHeaders("track-message-id"), ["client-1"])
        response, _ = self.post("user/", "ProfileID=2&Region=eu")
        (assigned,) = response.headers.getRawHeaders("track-message-id")
        self.assertEqual(str(uuid.UUID(assigned)), assigned)
        index = KINDS["user"].message_id_index
        self.assertEqual([r[index] for r in self.db.rows["UserEvent"]], ["client-1", assigned])
        self.db.outcome = Unavailable("gone")
        response, _ = self.post("user/", "ProfileID=3&Region=eu&MessageID=retry-me")
        self.assertEqual((response.code, response.headers.getRawHeaders("track-message-id")),
                         (503, ["retry-me"]))

    def test_metrics_count_what_clients_saw(self) -> None:
        from track.metrics import Metrics

        metrics = Metrics()
        batcher = Batcher(self.db.insert, self.clock, flush_interval=0.002, on_flushed=metrics.flushed)
        metrics.watch(lambda: batcher.pending, lambda: True)
        self.treq = stub_treq(TrackApp(batcher, self.clock, metrics=metrics).resource())
        self.post("user/", "ProfileID=1&Region=eu")
        self.post("user/", "ProfileID=2&Region=eu")
        self.post("user/", "ProfileID=x&Region=eu")
        self.post("item/", b"x" * 10, {"Content-Type": "text/csv"})
        d = self.treq.get("http://track.test/metrics")
        self.treq.flush()
        response = self.successResultOf(d)
        text = self.successResultOf(response.content()).decode()
        self.assertTrue(response.headers.getRawHeaders("content-type")[0].startswith("text/plain"))
        for line in ('track_events_accepted_total{type="user"} 2.0',
                     'track_events_rejected_total{reason="invalid",type="user"} 1.0',
                     'track_events_rejected_total{reason="unsupported_media_type",type="item"} 1.0',
                     "track_batch_size_count 2.0", "track_pending_events 0.0", "track_database_up 1.0"):
            self.assertIn(line, text)

    def test_201_waits_for_the_commit(self) -> None:
        self.db.hold = True
        d = self.treq.post(f"{URL}/session/", data=SESSION.encode(), headers=FORM)
        self.treq.flush()
        self.clock.advance(0.01)
        self.treq.flush()
        self.assertNoResult(d)
        self.assertEqual(self.db.rows, {})
        self.db.held[0].callback(None)
        self.treq.flush()
        self.assertEqual(self.successResultOf(d).code, 201)
        self.assertEqual(len(self.db.rows["SessionEvent"]), 1)

    def test_json_bodies_with_numbers_bools_and_strings(self) -> None:
        body = {"ProfileID": 7, "Region": "eu", "ItemName": "axe", "ItemType": "w",
                "IsUGC": True, "PriceGold": "12", "PriceSilver": -3}
        response, content = self.post("item/", json.dumps(body), JSON)
        self.assertEqual(response.code, 201, content)
        self.assertEqual(self.db.rows["ItemEvent"][0][:7], (7, "eu", "axe", "w", True, 12, -3))
        money = '{"ProfileID": 1, "Region": "eu", "Currency": "USD", "GrossAmount": 0.1, ' \
                '"NetAmount": 123456789012345.6789, "PaymentProvider": "p", "Product": "x"}'
        response, content = self.post("purchase/", money, JSON)
        self.assertEqual(response.code, 201, content)
        self.assertEqual(self.db.rows["PurchaseEvent"][0][3:5],
                         (Decimal("0.1"), Decimal("123456789012345.6789")))

    def test_every_bad_field_is_named_in_a_400(self) -> None:
        response, body = self.post("session/", "Region=e&SessionID=s&ProfileID=1.5&Colour=red")
        self.assertEqual(self.error(response, body, 400), {
            "error": "invalid event",
            "fields": {
                "Region": "must be 2 to 16 letters A-Z or a-z",
                "RemoteIP": "is required",
                "SessionType": "is required",
                "ProfileID": "must be an integer",
                "Colour": "unknown field",
            },
        })
        self.assertEqual(self.db.rows, {})

    def test_json_type_errors_are_400(self) -> None:
        cases = {
            '{"ProfileID": 1.0, "Region": "eu"}': {"ProfileID": "must be an integer"},
            '{"ProfileID": "1", "Region": ["eu"]}': {"Region": "must be 2 to 16 letters A-Z or a-z"},
            '{"ProfileID": 1, "Region": "eu", "Message": null}': {"Message": "must not be null"},
            '{"ProfileID": 1, "Region": "eu", "Referrer": 5}': {"Referrer": "must be a string"},
        }
        for body, fields in cases.items():
            with self.subTest(body=body):
                response, content = self.post("user/", body, JSON)
                self.assertEqual(self.error(response, content, 400)["fields"], fields)

    def test_unreadable_bodies_are_400(self) -> None:
        cases = [
            (b"{not json", JSON), (b"[1, 2]", JSON), (b'"text"', JSON),
            (b'{"ProfileID": NaN, "Region": "eu"}', JSON),
            (b"ProfileID=1&Region=%zz", FORM), (b"ProfileID=1&Region=\xff", FORM),
            (b"ProfileID=1&ProfileID=2&Region=eu", FORM),
            (b'{"ProfileID": 1, "ProfileID": 2, "Region": "eu"}', JSON),
            (b'{"ProfileID": 1, "Region": "\xc3("}', JSON),
            (b'{"\\ud800": 1, "ProfileID": 1, "Region": "eu"}', JSON),
            (b'{"\\udc00": 1, "\\udc00": 2}', JSON),
        ]
        for body, headers in cases:
            with self.subTest(body=body):
                response, content = self.post("user/", body, headers)
                self.assertIn("error", self.error(response, content, 400))
        self.assertEqual(self.db.rows, {})

    def test_other_content_types_are_415(self) -> None:
        for ctype in ("text/csv", "application/xml", "multipart/mixed; boundary=x",
                      "application/json; charset=latin-1", "text/plain; charset=latin-1"):
            with self.subTest(ctype=ctype):
                response, content = self.post("user/", "ProfileID=1&Region=eu", {"Content-Type": ctype})
                self.error(response, content, 415)

    def test_what_browsers_send_text_plain_json_and_form_data(self) -> None:
        response, content = self.post("user/", '{"ProfileID": 5, "Region": "eu", "Language": "fi"}',
                                      {"Content-Type": "text/plain;charset=UTF-8"})
        self.assertEqual(response.code, 201, content)
        body = (b'--XyZ\r\nContent-Disposition: form-data; name="ProfileID"\r\n\r\n6\r\n'
                b'--XyZ\r\nContent-Disposition: form-data; name="Region"\r\n\r\neu\r\n--XyZ--\r\n')
        response, content = self.post("user/", body, {"Content-Type": "multipart/form-data; boundary=XyZ"})
        self.assertEqual(response.code, 201, content)
        self.assertEqual([r[:2] + r[4:5] for r in self.db.rows["UserEvent"]], [(5, "eu", "fi"), (6, "eu", None)])

    def test_missing_content_type_is_read_as_a_form(self) -> None:
        response, content = self.post("user/", "ProfileID=1&Region=eu&Referrer=no-type", None)
        self.assertEqual(response.code, 201, content)
        self.assertEqual(self.db.rows["UserEvent"][0][:3], (1, "eu", "no-type"))

    def test_fields_may_come_in_the_query_string_as_in_the_original(self) -> None:
        d = self.treq.post(f"{URL}/user/?ProfileID=3&Region=eu", data=b"", headers=FORM)
        response, content = self.finish(d)
        self.assertEqual(response.code, 201, content)
        self.assertEqual(self.db.rows["UserEvent"][0][:2], (3, "eu"))

    def test_path_without_trailing_slash_works_without_redirect(self) -> None:
        response, content = self.post("user", "ProfileID=1&Region=eu")
        self.assertEqual(response.code, 201, content)
        self.assertEqual(self.db.rows["UserEvent"][0][:2], (1, "eu"))

    def test_unknown_path_is_a_json_404(self) -> None:
        response, content = self.post("bogus/", "a=1")
        self.assertEqual(self.error(response, content, 404)["error"], "not found")

    def test_wrong_method_is_405_with_allow(self) -> None:
        for method in ("GET", "PUT", "DELETE", "HEAD"):
            for path in ("session/", "session"):  # the slash is optional on every route, for this answer too
                with self.subTest(method=method, path=path):
                    response, content = self.finish(self.treq.request(method, f"{URL}/{path}"))
                    self.assertEqual(response.code, 405)
                    if method != "HEAD":
                        self.error(response, content, 405)
                    self.assertEqual(response.headers.getRawHeaders("allow"), ["POST, OPTIONS"])

    def test_overload_is_503_with_retry_after(self) -> None:
        self.db.hold = True
        for _ in range(3):
            self.treq.post(f"{URL}/user/", data=b"ProfileID=1&Region=eu", headers=FORM)
        self.treq.flush()
        response, content = self.post("user/", "ProfileID=1&Region=eu")
        self.error(response, content, 503)
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["1"])

    def test_database_outage_is_503_with_retry_after(self) -> None:
        self.db.outcome = Unavailable("gone")
        response, content = self.post("user/", "ProfileID=1&Region=eu")
        self.error(response, content, 503)
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["1"])

    def test_a_row_the_database_refuses_is_a_400_and_the_rest_are_stored(self) -> None:
        self.db.hold = True
        ds = [self.treq.post(f"{URL}/user/", data=f"ProfileID={i}&Region=eu".encode(), headers=FORM)
              for i in range(3)]
        self.treq.flush()
        self.clock.advance(0.002)
        self.db.held[0].callback([None, Refusal("Message", "is too long for the database column"), None])
        self.treq.flush()
        responses = [self.successResultOf(d) for d in ds]
        self.assertEqual([r.code for r in responses], [201, 400, 201])
        body = json.loads(self.successResultOf(responses[1].content()))
        self.assertEqual(body["fields"], {"Message": "is too long for the database column"})
        self.assertEqual([r[0] for r in self.db.rows["UserEvent"]], [0, 2])

    def test_remote_ip_comes_from_the_connection_or_a_trusted_proxy(self) -> None:
        self.post("user/", "ProfileID=1&Region=eu")
        d = self.treq.post(f"{URL}/user/", data=b"ProfileID=2&Region=eu",
                           headers={**FORM, "X-Forwarded-For": "203.0.113.5, 127.0.0.2"})
        self.finish(d)
        self.assertEqual([r[-2] for r in self.db.rows["UserEvent"]], ["127.0.0.1", "203.0.113.5"])

    def test_untrusted_peers_cannot_spoof_their_address(self) -> None:
        self.app.addresses.trusted_proxies = ()
        d = self.treq.post(f"{URL}/user/", data=b"ProfileID=2&Region=eu",
                           headers={**FORM, "X-Forwarded-For": "203.0.113.5"})
        self.finish(d)
        self.assertEqual(self.db.rows["UserEvent"][0][-2], "127.0.0.1")
