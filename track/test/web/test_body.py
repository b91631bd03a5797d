"""Body parsing: forms (plain and escaped) and JSON, strictly."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from track.fields.values import JSONNumber
from track.web.body import BodyError, media_type, parse_form, parse_json, read_fields


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
