"""Body parsing: forms (plain and escaped) and JSON, strictly."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from track.fields.values import JSONNumber
from track.web.bodies.body import BodyError, media_type, parse_form, parse_json, read_fields


class FormTests(SynchronousTestCase):
    def test_plain_and_escaped_forms_read_the_same(self) -> None:
        self.assertEqual(parse_form(b"a=1&b=x y&c=", "body"), {"a": "1", "b": "x y", "c": ""})
        self.assertEqual(parse_form(b"a=1&b=x+y&c=", "body"), {"a": "1", "b": "x y", "c": ""})
        self.assertEqual(parse_form(b"a=%31&%62=x%20y&c", "body"), {"a": "1", "b": "x y", "c": ""})

    def test_escapes_decode_to_utf8_exactly(self) -> None:
        self.assertEqual(parse_form(b"m=h%C3%A9+%F0%9F%98%80%26%3D%2B", "body"), {"m": "h\u00e9 \U0001f600&=+"})
        self.assertEqual(parse_form("m=h\u00e9".encode(), "body"), {"m": "h\u00e9"})

    def test_empty_pairs_are_skipped(self) -> None:
        self.assertEqual(parse_form(b"&a=1&&b=2&", "body"), {"a": "1", "b": "2"})

    def test_broken_forms_are_400(self) -> None:
        for body in (b"a=%zz", b"a=%4", b"a=%", b"a=\xff", b"a=%ff", b"a=1&a=2", b"a=%31&a=1", b"%61=1&a=2"):
            with self.subTest(body=body):
                self.assertEqual(self.assertRaises(BodyError, parse_form, body, "body").code, 400)


class JSONTests(SynchronousTestCase):
    def test_numbers_keep_their_text(self) -> None:
        value = parse_json(b'{"a": 1, "b": 1.50, "c": 1e3, "d": true, "e": "s"}')
        self.assertEqual(value, {"a": 1, "b": "1.50", "c": "1e3", "d": True, "e": "s"})
        self.assertIsInstance(value["b"], JSONNumber)
        self.assertIs(type(value["a"]), int)

    def test_broken_json_is_400(self) -> None:
        for body in (b"{", b"[]", b"1", b'"x"', b"null", b'{"a": NaN}', b'{"a": Infinity}',
                     b'{"a": 1, "a": 2}', b'{"a": "\xff"}', b"\xef\xbb\xbf{}", b""):
            with self.subTest(body=body):
                self.assertEqual(self.assertRaises(BodyError, parse_json, body).code, 400)


    def test_a_repeated_key_is_named(self) -> None:
        error = self.assertRaises(BodyError, parse_json, b'{"a": 1, "b": 2, "c": 3, "b": 4}')
        self.assertEqual(error.extra, {"fields": {"b": "given more than once"}})


class ContentTypeTests(SynchronousTestCase):
    def test_media_type_and_charset(self) -> None:
        self.assertEqual(media_type(b'application/JSON; Charset="UTF-8"'), ("application/json", "utf-8"))
        self.assertEqual(media_type(b"application/x-www-form-urlencoded"), ("application/x-www-form-urlencoded", None))
        self.assertEqual(media_type(None), ("", None))

    def test_query_and_body_fields_merge_but_never_repeat(self) -> None:
        fields = read_fields(b"application/x-www-form-urlencoded", b"b=2", b"a=1")
        self.assertEqual(fields, {"a": "1", "b": "2"})
        error = self.assertRaises(BodyError, read_fields, b"application/json", b'{"a": 2}', b"a=1")
        self.assertEqual(error.extra, {"fields": {"a": "given more than once"}})

    def test_only_utf8_and_known_types(self) -> None:
        latin1 = self.assertRaises(BodyError, read_fields, b"application/json; charset=latin-1", b"{}")
        self.assertEqual(latin1.code, 415)
        self.assertEqual(self.assertRaises(BodyError, read_fields, b"text/csv", b"a,b").code, 415)


def form_data(*parts: tuple[str, bytes], boundary: str = "b0undary", filename: str | None = None) -> bytes:
    """A multipart/form-data body as a browser's FormData sends it."""
    out = b""
    for name, value in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


MULTIPART = b"multipart/form-data; boundary=b0undary"


class BrowserBodyTests(SynchronousTestCase):
    """What browsers send: sendBeacon's text/plain, and FormData."""

    def test_text_plain_is_read_as_json(self) -> None:
        self.assertEqual(read_fields(b"text/plain;charset=UTF-8", b'{"ProfileID": 1, "Region": "eu"}'),
                         {"ProfileID": 1, "Region": "eu"})
        self.assertEqual(self.assertRaises(BodyError, read_fields, b"text/plain", b"ProfileID=1").code, 400)
        latin1 = self.assertRaises(BodyError, read_fields, b"text/plain; charset=latin-1", b"{}")
        self.assertEqual(latin1.code, 415)

    def test_form_data_is_read_as_a_form(self) -> None:
        body = form_data(("ProfileID", b"1"), ("Region", b"eu"), ("Message", "h\u00e9 \U0001f600\r\n&=".encode()))
        self.assertEqual(read_fields(MULTIPART, body, b"Language=de"),
                         {"Language": "de", "ProfileID": "1", "Region": "eu", "Message": "h\u00e9 \U0001f600\r\n&="})
        self.assertEqual(read_fields(b'multipart/form-data; boundary="b0undary"', form_data(("A", b""))), {"A": ""})

    def test_broken_form_data_is_refused_with_the_reason(self) -> None:
        cases = {
            "no boundary": (b"multipart/form-data", form_data(("a", b"1")), 400, None),
            "truncated": (MULTIPART, form_data(("a", b"1"))[:-12], 400, None),
            "other boundary": (MULTIPART, form_data(("a", b"1"), boundary="other"), 400, None),
            "a name twice": (MULTIPART, form_data(("a", b"1"), ("a", b"2")), 400, {"a": "given more than once"}),
            "a file": (MULTIPART, form_data(("a", b"1"), filename="blob"), 400,
                       {"a": "must be a text field, not a file"}),
            "bad UTF-8": (MULTIPART, form_data(("a", b"\xff")), 400, None),
            "a name in the query too": (MULTIPART, form_data(("a", b"1")), 400, {"a": "given more than once"}),
        }
        for case, (ctype, body, code, fields) in cases.items():
            with self.subTest(case=case):
                error = self.assertRaises(BodyError, read_fields, ctype, body,
                                          b"a=0" if case.endswith("query too") else b"")
                self.assertEqual(error.code, code, error.message)
                if fields:
                    self.assertEqual(error.extra, {"fields": fields})
