"""An NDJSON batch body read as one array (batchbody._well_formed_lines)
against line by line (batchbody._lines, the reader that says what is
wrong): the same events, or it leaves the body to the line-by-line reader."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from track.web.bodies.batchbody import _lines, _well_formed_lines, read_batch
from track.web.bodies.body import BodyError

NDJSON = b"application/x-ndjson"
# Lines that are not one JSON object each, and lines that are, with
# whitespace JSON allows and whitespace it does not.
PIECES = [
    '{"a":1}', '{"type":"user","ProfileID":1,"Region":"eu"}', ' {"a": 1.50} ', '\t{"a":"x"}\r', '{"a":[1',
    '2]}', '{"p":1},{"q":2}', '{"p":1} {"q":2}', '{"a":\n1}', '{"a":{"b":1}', '{"c":2}}', '[]', '[{"a":1}]',
    '1', '"x"', 'null', '{"a":NaN}', '{"a":1,"a":2}', '\ufeff{"a":1}', '\x0b', '\x0c{"a":1}', ' ', '', '\r',
    '{"a":"\u00e9\U0001f600"}', '{"a":"\\ud800"}', '{"a":1e400}', '{"a":-0}', '{', '}', '{"a":1}x',
    '{"a":"line\\nbreak"}', '[' * 3000 + ']' * 3000, '{"a":' * 300 + '1' + '}' * 300,
    # What the newlines made commas could join: a string, an array, objects across lines.
    '{"a":"x', 'y"}', '{"a":"', '"}', '{"a":[{"x":1}', ',{"y":2}]}', '{"a":1},', ',{"b":2}', '{"a":1}]',
    '[{"b":1}', '{"a":[', ']}', '{"p":1} , {"q":2}', '{"p":1},[]', '1,{"q":2}',
]


def typed(value: Any) -> Any:
    """A value with the type of each part spelled out (JSONNumber is a str)."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return type(value).__name__, value


def outcome(body: bytes, limit: int) -> Any:
    try:
        events, envelope = read_batch(NDJSON, body, limit)
    except BodyError as e:
        return e.code, e.message, e.extra
    return typed(events), envelope


class OneArrayTests(SynchronousTestCase):
    def assertAgrees(self, body: bytes, limit: int = 1000) -> bool:
        """The one array reads `body` as the line-by-line reader does; whether it did."""
        fast = _well_formed_lines(body, limit)
        if fast is not None:
            self.assertEqual(typed(fast), typed(_lines(body, limit)), body)
            self.assertLessEqual(len(fast), limit)
        return fast is not None

    @settings(max_examples=1000)
    @given(st.lists(st.sampled_from(PIECES), max_size=8), st.sampled_from(["\n", "\r\n", "\n\n", " \n"]),
           st.integers(1, 4))
    def test_any_lines_are_read_as_line_by_line(self, pieces: list[str], end: str, limit: int) -> None:
        self.assertAgrees(end.join(pieces).encode("utf-8", "surrogatepass"), limit)

    @settings(max_examples=300)
    @given(st.binary(max_size=200))
    def test_any_bytes_are_read_as_line_by_line(self, body: bytes) -> None:
        self.assertAgrees(body)

    def test_each_piece_alone_and_in_pairs(self) -> None:
        for first in PIECES:
            for second in ["", *PIECES]:
                for end in ("\n", "\r\n"):
                    self.assertAgrees(f"{first}{end}{second}".encode("utf-8", "surrogatepass"))

    def test_two_lines_made_one_and_one_made_two_are_no_two_lines(self) -> None:
        joined = [('{"a":[1', '2]}'), ('{"a":"x', 'y"}'), ('{"a":"', '"}'), ('{"a":[{"x":1}', ',{"y":2}]}'),
                  ('{"a":[', '{"b":1}]}')]
        for first, second in joined:
            for split in ('{"p":1},{"q":2}', '{"p":1} ,\t{"q":2}'):
                for lines in ([first, second, split], [split, first, second], [first, second, split, "{}"]):
                    body = "\n".join(lines).encode()
                    self.assertFalse(self.assertAgrees(body), body)
                    self.assertEqual(outcome(body, 10)[0], 400)

    def test_the_usual_bodies_are_read_as_one_array(self) -> None:
        events = [{"type": "session", "Region": "eu", "SessionID": f"s{n}", "MessageID": f"m-{n}",
                   "Timestamp": 1796668092675 + n, "Amount": 1.25} for n in range(100)]
        lines = [json.dumps(e, separators=(",", ":")) for e in events]
        for body in ("\n".join(lines), "\n".join(lines) + "\n", "\r\n".join(lines) + "\r\n\n",
                     "\n \n" + "\n".join(json.dumps(e) for e in events)):
            self.assertTrue(self.assertAgrees(body.encode()))
        self.assertFalse(self.assertAgrees("\n\n".join(lines).encode()))  # blank lines between: line by line
        self.assertEqual(typed(read_batch(NDJSON, "\n".join(lines).encode(), 1000)[0]),
                         typed(_lines("\n".join(lines).encode(), 1000)))

    def test_what_line_by_line_refuses_is_refused_with_the_same_answer(self) -> None:
        good = '{"type":"user","ProfileID":1,"Region":"eu"}'
        for body, answer in [
            (f'{good}\n{{"a":[1\n2]}}\n{{"p":1}},{{"q":2}}', (400, "line 2: malformed JSON: Expecting ',' delimiter: "
                                                             "line 1 column 8 (char 7)", {})),
            (f'{good}\n{{"a":1,"a":2}}', (400, "line 2: invalid event", {})),
            (f'{good}\n[{good}]', (400, "line 2: the JSON body must be one object of event fields", {})),
            (f'{good}\n\ufeff{good}', (400, "line 2: malformed JSON: Unexpected UTF-8 BOM (decode using utf-8-sig): "
                                       "line 1 column 1 (char 0)", {})),
            (f'{good}\n{good}\n{good}', (413, "more than 2 events in one batch", {"max_events": 2})),
            ("\n \x0b\n", (400, "the batch holds no events", {})),
        ]:
            self.assertEqual(outcome(body.encode(), 2), answer, body)
        self.assertEqual(outcome(b'{"a":1}\n\xff', 2), (400, "line 2: the body is not valid UTF-8", {}))
