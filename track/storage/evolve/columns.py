"""A declared kind's table: its columns, typed from the schema.

Integer: `int`, or `bigint` when minimum/maximum need 64 bits.  String:
`varchar(length)`; a date-time: `datetime(6)`, in UTC.  Boolean:
`tinyint(1)`.  Number: `decimal(19, scale)`.  Required: NOT NULL;
optional: NULL, with the declared DEFAULT if any.  Every table also has
EventID (the key), RemoteIP when the kind takes the client's address,
MessageID (the idempotency key, unique) and Created, in that order after
the properties.  The types are spelled as MySQL does; SQLite takes them by
affinity (track.storage.sqlite).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from track.events.declared import BOOLEAN, DATE_TIME, INTEGER, NUMBER, PRECISION, DeclaredKind, Property
from track.types import Column

EVENT_ID, REMOTE_IP, MESSAGE_ID, CREATED = "EventID", "RemoteIP", "MessageID", "Created"
CREATED_COLUMN = Column(CREATED, "timestamp", default="CURRENT_TIMESTAMP")
MESSAGE_ID_COLUMN = Column(MESSAGE_ID, "varchar(64)", nullable=True)  # the server fills it: a UUID if none is sent
REMOTE_IP_LENGTH = 45

Literal = Callable[[object], str]  # a value as an SQL literal, in the dialect's quoting


def column_type(prop: Property) -> str:
    """The column type a property's values are stored in."""
    if prop.type == INTEGER:
        return "bigint" if prop.wide else "int"
    if prop.type == BOOLEAN:
        return "tinyint(1)"
    if prop.type == NUMBER:
        return f"decimal({PRECISION},{prop.scale})"
    if prop.format == DATE_TIME:
        return "datetime(6)"
    return f"varchar({prop.length})"


def default_value(prop: Property) -> object:
    """The declared default as the column stores it."""
    if prop.type == BOOLEAN:
        return 1 if prop.default else 0
    if prop.type == NUMBER:
        return Decimal(str(prop.default))
    return prop.default


def property_column(prop: Property, literal: Literal) -> Column:
    """The column of one property: NULL unless required, its DEFAULT if declared."""
    default = literal(default_value(prop)) if prop.has_default else None
    return Column(prop.name, column_type(prop), nullable=not prop.required, default=default)


def remote_ip_column(literal: Literal, added: bool = False) -> Column:
    """RemoteIP, filled from the client's address; added to a table that
    has rows, it needs a DEFAULT for them (the empty text)."""
    return Column(REMOTE_IP, f"varchar({REMOTE_IP_LENGTH})", default=literal("") if added else None)


def server_columns(kind: DeclaredKind) -> frozenset[str]:
    """The columns track fills itself, not declared as properties."""
    return frozenset({EVENT_ID, MESSAGE_ID, CREATED} | ({REMOTE_IP} if kind.remote_ip else set()))


def table_columns(kind: DeclaredKind, literal: Literal) -> tuple[Column, ...]:
    """A new table's columns in order: EventID, the properties, RemoteIP,
    MessageID (each dialect spells it with its unique index), Created."""
    return (
        Column(EVENT_ID, primary_key=True),
        *(property_column(p, literal) for p in kind.properties),
        *((remote_ip_column(literal),) if kind.remote_ip else ()),
        MESSAGE_ID_COLUMN,
        CREATED_COLUMN,
    )
