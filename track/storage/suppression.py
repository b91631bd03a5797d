"""The suppression table: ProfileIDs whose later events are not stored.

`python -m track forget --suppress` adds an ID, `--unsuppress` removes it;
the collector reads the table at start and every REFRESH_SECONDS while it
runs (track/web/suppress.py).  A database without the table suppresses
nothing.  Every function takes an open DB-API connection and blocks.
"""

from __future__ import annotations

from typing import Any

from track.storage.dialect import Dialect

TABLE = "TrackSuppression"
REFRESH_SECONDS = 10.0


def _create(cursor: Any, dialect: Dialect) -> None:
    table = dialect.quote(TABLE)
    if dialect.name == "sqlite":
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {table} (ProfileID INTEGER PRIMARY KEY, "
                       "Created TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)")
    else:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {table} (ProfileID INT NOT NULL PRIMARY KEY, "
                       "Created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP) ENGINE=InnoDB")


def read_ids(conn: Any, dialect: Dialect) -> frozenset[int]:
    """Every suppressed ProfileID (none if the table does not exist)."""
    cursor = conn.cursor()
    try:
        if not dialect.table_exists(cursor, TABLE):
            return frozenset()
        cursor.execute(f"SELECT ProfileID FROM {dialect.quote(TABLE)}")
        ids = frozenset(int(pid) for (pid,) in cursor.fetchall())
    finally:
        cursor.close()
    conn.commit()  # end the read's transaction: the next refresh sees new rows
    return ids


def suppress(conn: Any, dialect: Dialect, profile_id: int) -> bool:
    """Add `profile_id`; False if it was there already."""
    cursor = conn.cursor()
    try:
        _create(cursor, dialect)
        p = dialect.placeholder
        cursor.execute(f"SELECT 1 FROM {dialect.quote(TABLE)} WHERE ProfileID = {p}", (profile_id,))
        if cursor.fetchall():
            conn.commit()
            return False
        cursor.execute(f"INSERT INTO {dialect.quote(TABLE)} (ProfileID) VALUES ({p})", (profile_id,))
    finally:
        cursor.close()
    conn.commit()
    return True


def unsuppress(conn: Any, dialect: Dialect, profile_id: int) -> bool:
    """Remove `profile_id`; False if it was not there."""
    cursor = conn.cursor()
    try:
        if not dialect.table_exists(cursor, TABLE):
            return False
        p = dialect.placeholder
        cursor.execute(f"DELETE FROM {dialect.quote(TABLE)} WHERE ProfileID = {p}", (profile_id,))
        removed = bool(cursor.rowcount)
    finally:
        cursor.close()
    conn.commit()
    return removed
