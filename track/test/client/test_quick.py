"""The common event's quick path (track.client.quick) against the general one:
the same line and MessageID, or it leaves the event to the general path."""

from __future__ import annotations

import itertools
from typing import Any

from twisted.trial.unittest import TestCase

import track.client.events
import track.client.quick
import track.client.sending
from track.client import Client, InvalidEventError
from track.client.quick import KNOWN_MAX
from track.client.rules import Rules, builtin_rules
from track.test.client.test_rules import MINIMAL, VALUES

EXTRA: list[object] = [
    'say "hi"', "back\\slash", "tab\there", "new\nline", "\x7f", "\x00", "</script>", "MessageID", "a" * 32,
    "a" * 33, "10.0.0.1", "::1", 1796668092675, "2026-12-07T15:04:05Z", "2026-12-07T15:04:05.123+01:00",
    10**16, -1, 2**63, "-", ".", "a:b",
]


class QuickPathTests(TestCase):
    def setUp(self) -> None:
        self.reset_ids()
        for module in (track.client.quick, track.client.sending):
            self.patch(module, "now_ms", lambda: 1796668092675)
        self.client = Client("http://127.0.0.1:9", handle_sigterm=False)
        self.client._rules_from_collector = True  # nothing to fetch: the built-in rules decide
        self.addCleanup(self.client.close)
        self.quick_count = 0

    def general(self, kind: Any, fields: Any) -> tuple[str, str] | str:
        try:
            return self.client._encode(kind, fields)
        except (InvalidEventError, TypeError, ValueError) as e:
            return f"{type(e).__name__}: {e}"

    def assertSame(self, kind: Any, fields: Any) -> None:
        """Each path from the same MessageID counter: quick, else general."""
        self.reset_ids()
        quick = self.client._rules.quick(kind, fields)
        self.reset_ids()
        general = self.general(kind, fields)
        if quick is not None:
            self.quick_count += 1
            self.assertEqual(quick, general, (kind, fields))
        self.reset_ids()
        self.assertEqual(self.encode(kind, fields), general, (kind, fields))

    def encode(self, kind: Any, fields: Any) -> tuple[str, str] | str:
        try:
            return self.client.encode(kind, fields)
        except (InvalidEventError, TypeError, ValueError) as e:
            return f"{type(e).__name__}: {e}"

    def reset_ids(self) -> None:
        """MessageIDs from 1 again, as the general path and this one make them."""
        ids = itertools.count(1)

        def message_id() -> str:
            return f"0123456789abcdef0123456789abcdef-{next(ids):x}"

        for module in (track.client.events, track.client.quick):
            self.patch(module, "new_message_id", message_id)

    def test_every_field_and_value_gets_the_general_paths_answer(self) -> None:
        rules = builtin_rules()
        for kind, minimal in MINIMAL.items():
            self.assertSame(kind, minimal)
            for name in [*rules[kind]["properties"], "type", "Unknown"]:
                for value in [*VALUES, *EXTRA]:
                    self.assertSame(kind, {**minimal, name: value})
                    without = {k: v for k, v in minimal.items() if k != name}
                    self.assertSame(kind, {**without, name: value})
                self.assertSame(kind, {k: v for k, v in minimal.items() if k != name})
        self.assertGreater(self.quick_count, 500)

    def test_kinds_and_shapes_it_leaves_to_the_general_path(self) -> None:
        odd: list[tuple[Any, Any]] = [
            ("nosuch", MINIMAL["user"]), (None, MINIMAL["user"]), (["user"], MINIMAL["user"]),
            ("user", [("ProfileID", 1)]), ("user", None), ("user", {1: 2, **MINIMAL["user"]}),
            ("user", {"ProfileID": 1, "Region": "eu", "MessageID": ""})]
        for kind, fields in odd:
            self.assertIsNone(self.client._rules.quick(kind, fields))
            self.assertSame(kind, fields)

    def test_the_common_event_takes_the_quick_path(self) -> None:
        event = {"Region": "eu", "SessionID": "c1", "RemoteIP": "10.0.0.1", "SessionType": "bench"}
        self.assertEqual(self.client._rules.quick("session", event), (
            '{"type":"session","Region":"eu","SessionID":"c1","RemoteIP":"10.0.0.1","SessionType":"bench",'
            '"MessageID":"0123456789abcdef0123456789abcdef-1","Timestamp":1796668092675}',
            "0123456789abcdef0123456789abcdef-1"))

    def test_a_remembered_value_is_remembered_only_as_a_string(self) -> None:
        rules = Rules(builtin_rules(), "built in")
        self.assertIsNotNone(rules.quick("user", {"ProfileID": 1, "Region": "eu"}))
        self.assertIsNone(rules.quick("user", {"ProfileID": 1, "Region": track.client.events.JSONNumber("eu")}))
        for n in range(KNOWN_MAX * 2):
            rules.quick("user", {"ProfileID": 1, "Region": "eu", "MessageID": f"m{n}"})
        self.assertEqual(len(rules.plans["user"].fields["MessageID"][3]), KNOWN_MAX)
        self.assertEqual(rules.plans["user"].fields["Region"][3], {"eu": '"Region":"eu"'})
        self.assertIsNone(rules.quick("user", {"ProfileID": 1, "Region": "e"}))  # checked, not remembered

    def test_another_message_id_rule_checks_each_of_ours(self) -> None:
        strict = builtin_rules()
        strict["user"]["properties"]["MessageID"] = {"type": "string", "maxLength": 40}
        rules = Rules(strict, "stricter")
        self.assertFalse(rules.plans["user"].our_message_ids)
        self.assertIsNone(rules.quick("user", {"ProfileID": 1, "Region": "eu"}))
        self.assertIsNotNone(rules.quick("user", {"ProfileID": 1, "Region": "eu", "MessageID": "mine"}))
