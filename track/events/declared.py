"""What an events file declares, once read and checked: kinds, each a table
and its properties, in the order the file gives them.

Imports nothing of track, so the field tables, the storage layer and the
command line may all build on it without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

# The JSON Schema types of the subset.
INTEGER, STRING, BOOLEAN, NUMBER = "integer", "string", "boolean", "number"
DATE_TIME = "date-time"  # the one string `format` of the subset

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
DEFAULT_SCALE = 4  # a number without multipleOf: 0.0001, as the original's money
PRECISION = 19  # digits of a number's DECIMAL column, as the original's money
DEFAULT_MAX_LENGTH = 255  # a string without maxLength (or enum)


@dataclass(frozen=True)
class Property:
    """One property of a kind: a column, and the rules a value must meet."""

    name: str
    type: str  # INTEGER | STRING | BOOLEAN | NUMBER
    required: bool
    max_length: int | None = None  # strings: the column's length in characters
    enum: tuple[str, ...] | None = None  # strings
    pattern: str | None = None  # strings: an ECMA-262 regex, unanchored as JSON Schema says
    format: str | None = None  # strings: DATE_TIME or None
    minimum: int | Decimal | None = None  # integers and numbers
    maximum: int | Decimal | None = None
    multiple_of: Decimal | None = None  # numbers: a power of ten, the column's scale
    has_default: bool = False
    default: Any = None  # fills the value (and the column's DEFAULT) when not given
    message: str | None = None  # x-track-message: said of every bad value instead
    description: str | None = None

    @property
    def int_range(self) -> tuple[int, int]:
        """Integers: the values taken (32-bit unless the bounds say otherwise)."""
        low = int(self.minimum) if self.minimum is not None else INT32[0]
        high = int(self.maximum) if self.maximum is not None else INT32[1]
        return low, high

    @property
    def wide(self) -> bool:
        """Integers: whether the column must be 64-bit."""
        low, high = self.int_range
        return low < INT32[0] or high > INT32[1]

    @property
    def scale(self) -> int:
        """Numbers: digits after the decimal point."""
        if self.multiple_of is None:
            return DEFAULT_SCALE
        exponent = self.multiple_of.normalize().as_tuple().exponent
        return max(0, -exponent) if type(exponent) is int else 0

    @property
    def length(self) -> int:
        """Strings: the column's length in characters."""
        if self.max_length is not None:
            return self.max_length
        if self.format == DATE_TIME:
            return 35  # the longest RFC 3339 text with a fraction to the nanosecond
        if self.enum:
            return max(len(v) for v in self.enum)
        return DEFAULT_MAX_LENGTH


@dataclass(frozen=True)
class DeclaredKind:
    """One event kind: its route name, its table, its properties.

    MessageID and Created belong to every kind and are not listed; RemoteIP
    is added, filled from the client's address, when `remote_ip` is set."""

    name: str
    table: str
    properties: tuple[Property, ...]
    remote_ip: bool = False  # x-track-remote-ip
    description: str | None = None
    schema: dict[str, Any] = field(default_factory=dict, compare=False)  # as the file wrote it
    source: str = ""  # the file it came from, for messages

    def property(self, name: str) -> Property | None:
        return next((p for p in self.properties if p.name == name), None)
