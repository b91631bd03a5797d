"""The OpenAPI document held against what the server accepts, for a kind
from an events file: every rule the subset has (see test_openapi_fields,
whose tests run here with level_up served beside the original four)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from track.fields.event import Kind
from track.test.events.example import level_up_kinds
from track.test.web import test_openapi_fields


class DeclaredDocumentHoldsTests(test_openapi_fields.DocumentHoldsTests):
    def served(self) -> Mapping[str, Kind]:
        return level_up_kinds(self.mktemp())

    def drawn(self) -> list[str]:
        return ["level_up"]

    def unsaid(self, kind: str, name: str, value: Any) -> bool:
        """What the document cannot say, and says in words instead: a
        number's bounds for its text form (the JSON number has them), and
        a date-time whose UTC falls outside years 1 to 9999."""
        if name == "Reward" and type(value) is str and value:
            try:
                return not 0 <= Decimal(value) <= 1000000
            except InvalidOperation:
                return False
        if name == "At" and type(value) is str:
            return (value.startswith("0001-01-01") and "+" in value[10:]) or (
                value.startswith("9999-12-31") and "-" in value[10:])
        return False

    def test_edges_of_the_declared_rules(self) -> None:
        cases = [
            ("PlayerID", ["0", "9007199254740991", "-0", "0009"], ["-1", "9007199254740992", "1.0", ""]),
            ("Level", ["1", "100", "001"], ["0", "101", "-1", ""]),
            ("Class", ["mage", ""], ["Mage", "bard"]),
            ("Reward", ["0", "1000000", "0.01", "000001.5"], ["0.001", "1e3"]),
            ("Guild", ["ABC-1", ""], ["ABC-", "abc-1", "ABC-1234567890"]),
            ("At", ["2026-12-07T15:04:05Z", ""], ["2026-12-07T15:04:05", "2026-13-01T00:00:00Z"]),
        ]
        for name, good, bad in cases:
            for value in good:
                with self.subTest(name=name, value=value):
                    self.check("level_up", "form", name, value, allowed=True)
            for value in bad:
                with self.subTest(name=name, value=value):
                    self.check("level_up", "form", name, value, allowed=False)
