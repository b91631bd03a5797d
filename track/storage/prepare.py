"""Getting the database ready: at start-up, or later when it first appears.

A database that cannot be used for good (wrong password, unknown database or
host, tables lacking columns) stops start-up with one line.  One that is
merely unreachable does not: track starts, acknowledges from the spool, and
migrates once the database answers.  Meanwhile it validates against the
column limits it last saw, kept beside the spool.
"""

from __future__ import annotations

import json
import os
from typing import Any

from track.fields.kinds import KINDS, Kind
from track.logs import Logger
from track.storage.dialect import Dialect, dialect_for
from track.storage.dsn import DSN
from track.storage.schema import fit_kinds, migrate

log = Logger(namespace="track")

LIMITS_FILE = "column-limits.json"


def migrate_and_fit(conn: Any, dialect: Dialect) -> tuple[list[str], dict[str, Kind]]:
    """Run pending migrations, then read the real column limits."""
    done = migrate(conn, dialect)
    kinds = fit_kinds(conn, dialect, KINDS)
    conn.commit()
    return done, kinds


def migrate_on_own_connection(dialect: Dialect) -> tuple[list[str], dict[str, Kind]]:
    """migrate_and_fit on a connection of its own, opened for start-up work
    (the first host that takes writes, with a read timeout long enough for
    an ALTER TABLE on a big table or a wait for another instance's
    migration lock: a pool connection's few seconds would kill both)."""
    conn = dialect.connect()
    try:
        return migrate_and_fit(conn, dialect)
    finally:
        try:
            conn.close()
        except Exception:  # closed by the driver already (a read timed out): that error is the one raised
            pass


def log_migrations(dsn: DSN, done: list[str]) -> None:
    for line in done:
        log.info("migrated {dsn}: {what}", dsn=dsn.redacted(), what=line)
    if not done:
        log.info("schema of {dsn} is up to date", dsn=dsn.redacted())


def prepare_database(dsn: DSN) -> dict[str, Kind] | None:
    """Connect once, migrate, fit the field tables to the real columns.

    Returns None when the server is unreachable for now; raises SystemExit
    with one line (password masked) when the database cannot be used at all.
    """
    dialect = dialect_for(dsn)
    try:
        done, kinds = migrate_on_own_connection(dialect)
    except Exception as e:
        message = str(e).replace(dsn.password, "***") if dsn.password else str(e)
        if dialect.waited_at_start(e):  # the failure table (track.storage.mysql.errors)
            log.warn("database {dsn} unreachable at start ({e}); acknowledging from the spool "
                     "until it appears", dsn=dsn.redacted(), e=message)
            return None
        raise SystemExit(f"track: cannot use database {dsn.redacted()}: {message}") from None
    log_migrations(dsn, done)
    return kinds


def save_limits(directory: str, kinds: dict[str, Kind]) -> None:
    """Remember the column limits, for validating while the database is away.

    Durable (fsync'd, then renamed over the old file), and never fatal: on a
    full or failing spool disk the last saved limits stay, with a warning."""
    limits = {k: {f.name: [f.max_length, f.bmp_only] for f in e.fields if f.type == "string"}
              for k, e in kinds.items()}
    path = os.path.join(directory, LIMITS_FILE)
    try:
        with open(path + ".tmp", "w") as f:
            json.dump(limits, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(path + ".tmp", path)
    except OSError as e:
        log.warn("could not save the column limits in {path} ({e}); the last saved ones stay",
                 path=path, e=e)
        try:
            os.unlink(path + ".tmp")
        except OSError:
            pass


def load_limits(directory: str) -> dict[str, Kind]:
    """The field tables with the limits last seen, or the defaults."""
    try:
        with open(os.path.join(directory, LIMITS_FILE)) as f:
            limits = json.load(f)
    except (OSError, ValueError):
        return dict(KINDS)
    return {name: kind.with_string_limits(limits.get(name, {})) for name, kind in KINDS.items()}
