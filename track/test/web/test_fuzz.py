"""Fuzzing through the real HTTP stack into the real MariaDB.

Thousands of mutated requests (random fields and values, truncated bodies,
flipped bytes, wrong types and encodings) must each get a deliberate answer:
never a 5xx, never a dropped connection, and a row exactly for each 201.
"""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter
from typing import Any
from urllib.parse import quote

import treq
from twisted.internet import reactor
from twisted.internet.defer import DeferredSemaphore, gatherResults, inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from track.fields.kinds import KINDS
from track.test.mariadb import MYSQL_SKIP
from track.test.support import execute, reset_mysql, serve

REQUESTS = 3000
CONCURRENCY = 16
SEED = 20261128
VALID = {
    "session": {"Region": "eu", "SessionID": "s", "RemoteIP": "10.0.0.1", "SessionType": "login"},
    "user": {"ProfileID": "1", "Region": "eu"},
    "item": {"ProfileID": "1", "Region": "eu", "ItemName": "n", "ItemType": "t", "IsUGC": "1"},
    "purchase": {"ProfileID": "1", "Region": "eu", "Currency": "EUR", "GrossAmount": "1.5",
                 "NetAmount": "1", "PaymentProvider": "p", "Product": "x"},
}
NASTY: list[Any] = [
    "", " ", "null", "0", "-0", "007", "+1", "1e3", "0x1f", "1.0", "1.00001", "NaN", "Infinity",
    "2147483647", "2147483648", "-2147483649", "99999999999999999999", "\u0661\u0662", "\uff11",
    "true", "FALSE", "yes", "x" * 17, "x" * 46, "x" * 65, "x" * 5000, "\U0001f600" * 3,
    "\u00e9\u00e8", "a\x00b", "\x1b[31m", "'; DROP TABLE UserEvent;--", "%", "%zz", "&", "=",
    "\r\n", "\\", "\"", None, True, False, 0, 1, -1, 2**31, 2**63, 1.5, 1e300, [], {}, [1], {"a": 1},
]
FORM = "application/x-www-form-urlencoded"
# treq's type for a headers dict: a plain dict[str, str] does not match it.
HeaderDict = dict[str | bytes, str | bytes]


def mutate(rng: random.Random, kind: str) -> tuple[bytes, HeaderDict]:
    """One request body and headers, valid or broken in some random way."""
    fields: dict[str, Any] = dict(VALID[kind])
    names = [f.name for f in KINDS[kind].fields]
    for _ in range(rng.randint(0, 3)):
        action = rng.random()
        if action < 0.45:
            fields[rng.choice(names)] = rng.choice(NASTY)
        elif action < 0.6 and fields:
            fields.pop(rng.choice(list(fields)))
        elif action < 0.75:
            fields[rng.choice(["Bogus", "region", "ProfileId", "", "Message\x00"])] = "1"
        else:
            fields[rng.choice(names)] = "".join(chr(rng.randint(0, 0x2FFFF) or 1) for _ in range(rng.randint(0, 8)))
    as_json = rng.random() < 0.5
    if as_json:
        try:
            body = json.dumps(fields, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
        except (TypeError, ValueError):
            body = b"{bad"
        ctype = rng.choice(["application/json", "application/json; charset=utf-8", "text/plain"])
    else:
        def enc(v: Any) -> bytes:
            return str(v).encode("utf-8", "surrogatepass")

        parts = [f"{quote(enc(k))}={quote(enc(v), safe='') if rng.random() < 0.9 else str(v)}"
                 for k, v in fields.items() if rng.random() < 0.97]
        body = "&".join(parts).encode("utf-8", "surrogatepass")
        ctype = rng.choice([FORM, FORM, FORM, FORM + "; charset=latin-1", "multipart/form-data"])
    roll = rng.random()
    if roll < 0.1 and body:
        body = body[: rng.randrange(len(body))]  # truncated
    elif roll < 0.25 and body:
        flipped = bytearray(body)
        for _ in range(rng.randint(1, 4)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        body = bytes(flipped)
    headers: HeaderDict = {"Content-Type": ctype}
    if rng.random() < 0.08:
        headers["Content-Encoding"] = "gzip"
        body = gzip.compress(body)
        if rng.random() < 0.3:
            body = body[: len(body) // 2]
    return body, headers


class FuzzTests(TestCase):
    skip = MYSQL_SKIP
    timeout = 600

    @inlineCallbacks
    def test_mutated_requests_never_5xx_never_drop_and_store_only_201s(self) -> Any:
        dsn = reset_mysql(self)
        port, _ = serve(self, dsn=dsn, max_body=64 * 1024)
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = CONCURRENCY
        self.addCleanup(pool.closeCachedConnections)
        rng = random.Random(SEED)
        statuses: Counter[int] = Counter()
        dropped: list[str] = []
        acked: set[tuple[str, str]] = set()
        limit = DeferredSemaphore(CONCURRENCY)

        @inlineCallbacks
        def one(i: int) -> Any:
            kind = rng.choice(list(VALID))
            body, headers = mutate(rng, kind)
            path = f"/api/1.0/track/{kind}" + ("/" if rng.random() < 0.5 else "")
            try:
                response = yield treq.post(f"http://127.0.0.1:{port}{path}", data=body,
                                           headers=headers, pool=pool)
                yield response.content()
            except Exception as e:
                dropped.append(f"{i}: {e!r}")
                return
            statuses[response.code] += 1
            if response.code == 201:
                acked.update((kind, m) for m in response.headers.getRawHeaders("track-message-id"))

        yield gatherResults([limit.run(one, i) for i in range(REQUESTS)])
        # MessageIDs are unique per table: a fuzzed one may be stored once in each.
        stored_ids = [(name, m) for name, kind in KINDS.items()
                      for (m,) in execute(dsn, f"SELECT MessageID FROM {kind.table}")]
        stored = len(stored_ids)
        print(f"\nfuzz: {REQUESTS} requests, answers {dict(sorted(statuses.items()))}, "
              f"rows stored {stored}")
        self.assertEqual(dropped, [])
        self.assertEqual({c: n for c, n in statuses.items() if c >= 500}, {})
        self.assertEqual(sum(statuses.values()), REQUESTS)
        # A row for each acknowledged MessageID, and nothing else.  (Fuzzed
        # MessageIDs repeat, so several 201s may name one row.)
        self.assertEqual(sorted(stored_ids), sorted(acked))
        self.assertGreater(statuses[201], REQUESTS // 20, "the fuzzer should also produce valid events")
        self.assertGreater(statuses[400], REQUESTS // 4)
