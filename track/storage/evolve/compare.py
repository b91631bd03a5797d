"""One property against what came before: its last applied declaration
(what events stored and still in flight were checked against) and its real
column (what the database can hold).

A change is additive when every value the old declaration took is still
taken and still fits its column; anything else is breaking.  Pure
functions: the classification (track.storage.evolve.classify) calls them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from track.events.declared import BOOLEAN, DATE_TIME, INT32, INT64, INTEGER, NUMBER, PRECISION, STRING, Property
from track.storage.evolve.real import RealColumn

MAX_DECIMAL_DIGITS = 65  # MySQL's DECIMAL
DATETIME_FRACTION = 6  # datetime(6): microseconds


@dataclass(frozen=True)
class Narrower:
    """A breaking difference: what changed, and the old value to keep."""

    text: str
    keep: str  # what to do instead, short of a new kind: "keep maximum 100"


@dataclass(frozen=True)
class Fit:
    """How a real column must change to hold a property's values: a wider
    type (None: its own type will do), and whether it must take NULL."""

    type: str | None
    null: bool

    @property
    def needed(self) -> bool:
        return self.type is not None or self.null


def describe(prop: Property) -> str:
    """A property's type as a message names it."""
    return "string (date-time)" if prop.format == DATE_TIME else prop.type


def _value(value: object) -> str:
    return repr(value) if isinstance(value, str) else "true" if value is True else "false" \
        if value is False else str(value)


def declaration_changes(old: Property, new: Property) -> tuple[list[str], list[Narrower]]:
    """What changed between two declarations of one property: the additive
    changes (as log lines) and the breaking ones."""
    wider: list[str] = []
    narrower: list[Narrower] = []
    if old.type != new.type or old.format != new.format:
        return [], [Narrower(f"type changed from {describe(old)} to {describe(new)}", f"keep it {describe(old)}")]
    if old.required and not new.required:
        wider.append("made optional")
    elif new.required and not old.required:
        narrower.append(Narrower("made required (events stored and in flight may lack it)", "keep it optional"))
    if new.type == INTEGER:
        _bounds(old.int_range, new.int_range, wider, narrower)
    elif new.type == NUMBER:
        if old.scale != new.scale:
            narrower.append(Narrower(f"decimal places (multipleOf) changed from {old.scale} to {new.scale}",
                                     f"keep multipleOf {Decimal(1).scaleb(-old.scale)}"))
        _bounds((old.minimum, old.maximum), (new.minimum, new.maximum), wider, narrower)
    elif new.type == STRING:
        _string(old, new, wider, narrower)
    if (old.has_default, _norm(old)) != (new.has_default, _norm(new)):
        wider.append(f"default now {_value(_norm(new))}" if new.has_default else "default removed")
    return wider, narrower


def _norm(prop: Property) -> object:
    """A default comparable across readings (a number read back from JSON text)."""
    if not prop.has_default:
        return None
    return Decimal(str(prop.default)) if prop.type == NUMBER else prop.default


def _bounds(old: tuple[object, object], new: tuple[object, object], wider: list[str],
            narrower: list[Narrower]) -> None:
    """minimum/maximum, None standing for no bound."""
    (old_low, old_high), (new_low, new_high) = old, new
    if new_low is not None and (old_low is None or new_low > old_low):  # type: ignore[operator]
        narrower.append(Narrower(f"minimum raised from {_bound(old_low)} to {new_low}",
                                 f"keep minimum {_bound(old_low)}"))
    if new_high is not None and (old_high is None or new_high < old_high):  # type: ignore[operator]
        narrower.append(Narrower(f"maximum lowered from {_bound(old_high)} to {new_high}",
                                 f"keep maximum {_bound(old_high)}"))
    low_wider = old_low is not None and (new_low is None or new_low < old_low)  # type: ignore[operator]
    high_wider = old_high is not None and (new_high is None or new_high > old_high)  # type: ignore[operator]
    if low_wider or high_wider:
        wider.append(f"range widened to {_bound(new_low, 'unbounded')} .. {_bound(new_high, 'unbounded')}")


def _bound(value: object, none: str = "none") -> str:
    return none if value is None else str(value)


def _string(old: Property, new: Property, wider: list[str], narrower: list[Narrower]) -> None:
    if old.max_length is not None or new.max_length is not None:
        if new.length < old.length:
            narrower.append(Narrower(f"maxLength lowered from {old.length} to {new.length}",
                                     f"keep maxLength {old.length}"))
        elif new.length > old.length:
            wider.append(f"maxLength raised from {old.length} to {new.length}")
    if old.enum is not None and new.enum is None:
        wider.append("enum removed (any text is taken)")
    elif new.enum is not None and old.enum is None:
        narrower.append(Narrower("enum added (values taken before may not be in it)", "leave the enum out"))
    elif old.enum is not None and new.enum is not None:
        removed = [v for v in old.enum if v not in new.enum]
        added = [v for v in new.enum if v not in old.enum]
        if removed:
            narrower.append(Narrower(f"enum value(s) removed: {', '.join(map(repr, removed))}",
                                     "keep every enum value"))
        if added:
            wider.append(f"enum gains {', '.join(map(repr, added))}")
    if old.pattern != new.pattern:
        if new.pattern is None:
            wider.append("pattern removed")
        elif old.pattern is None:
            narrower.append(Narrower(f"pattern {new.pattern!r} added", "leave the pattern out"))
        else:
            narrower.append(Narrower(f"pattern changed from {old.pattern!r} to {new.pattern!r}",
                                     f"keep pattern {old.pattern!r}"))


def fit(prop: Property, column: RealColumn) -> Fit | str:
    """How `column` must change to hold every value of `prop`: a Fit (not
    `needed` when it holds them as it is), or why it never can.  A column
    wider than declared is left as it is: its real width is the limit."""
    wanted = DATE_TIME if prop.format == DATE_TIME else prop.type
    if wanted not in column.holds:
        return f"column {column.name} is {column.type}, which cannot hold {describe(prop)} values"
    null = not prop.required and not prop.has_default and not column.nullable
    if prop.type in (INTEGER, BOOLEAN):
        need = prop.int_range if prop.type == INTEGER else (0, 1)
        have = column.int_range or INT64
        if have[0] <= need[0] and need[1] <= have[1]:
            return Fit(None, null)
        low, high = min(have[0], need[0]), max(have[1], need[1])
        if INT32[0] <= low and high <= INT32[1]:
            return Fit("int", null)
        if INT64[0] <= low and high <= INT64[1]:
            return Fit("bigint", null)
        return f"column {column.name} is {column.type}: no integer column holds both its values and {need}"
    if prop.type == NUMBER:
        if column.scale is None or column.precision is None:
            return Fit(None, null)
        if column.scale < prop.scale:
            return f"column {column.name} is {column.type}, which would round to {column.scale} decimal places"
        whole = PRECISION - prop.scale
        if column.precision - column.scale >= whole:
            return Fit(None, null)
        if whole + column.scale > MAX_DECIMAL_DIGITS:
            return f"column {column.name} is {column.type}: no DECIMAL holds {whole} digits before the point " \
                   f"and its {column.scale} after"
        return Fit(f"decimal({whole + column.scale},{column.scale})", null)
    if wanted == DATE_TIME:
        short = column.fraction is not None and column.fraction < DATETIME_FRACTION
        return Fit(f"datetime({DATETIME_FRACTION})" if short else None, null)
    short = column.length is not None and column.length < prop.length
    return Fit(f"varchar({prop.length})" if short else None, null)
