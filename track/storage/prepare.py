"""Getting the database ready: at start-up, later when it first appears,
or on SIGHUP.

The frozen migrations run first (track.storage.schema), then the served
kinds are compared with the tables and the additive changes applied
(track.storage.evolve); a breaking change stops start-up, naming each.  A
database that cannot be used for good (wrong password, unknown database or
host, tables lacking columns) stops start-up with one line.  One that is
merely unreachable does not: track starts, acknowledges from the spool, and
migrates once the database answers.  Meanwhile it validates against the
column limits it last saw, kept beside the spool.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from track.events.declared import DeclaredKind
from track.events.files import original_kinds
from track.fields.compile import compile_kinds
from track.fields.kinds import Kind
from track.logs import Logger
from track.storage.dialect import Dialect, dialect_for
from track.storage.dsn import DSN
from track.storage.evolve.apply import BreakingChanges, evolve
from track.storage.schema import fit_kinds, migrate

log = Logger(namespace="track")

LIMITS_FILE = "column-limits.json"


@dataclass(frozen=True)
class Prepared:
    """What getting the database ready did, and the field tables fitted to it."""

    done: list[str]  # one line per migration or change applied
    gone: list[str]  # kinds served before and no longer
    kinds: dict[str, Kind]


def migrate_and_fit(conn: Any, dialect: Dialect, declared: Mapping[str, DeclaredKind]) -> Prepared:
    """Run pending migrations, apply the declared kinds' additive changes
    (BreakingChanges: nothing applied), then read the real column limits."""
    done = migrate(conn, dialect)
    evolved = evolve(conn, dialect, declared)
    kinds = fit_kinds(conn, dialect, compile_kinds(declared))
    conn.commit()
    return Prepared(done + evolved.done, evolved.gone, kinds)


def migrate_on_own_connection(dialect: Dialect, declared: Mapping[str, DeclaredKind]) -> Prepared:
    """migrate_and_fit on a connection of its own, opened for start-up work
    (the first host that takes writes, with a read timeout long enough for
    an ALTER TABLE on a big table or a wait for another instance's
    migration lock: a pool connection's few seconds would kill both)."""
    conn = dialect.connect()
    try:
        return migrate_and_fit(conn, dialect, declared)
    finally:
        try:
            conn.close()
        except Exception:  # closed by the driver already (a read timed out): that error is the one raised
            pass


def log_migrations(dsn: DSN, prepared: Prepared) -> None:
    for line in prepared.done:
        log.info("migrated {dsn}: {what}", dsn=dsn.redacted(), what=line)
    if not prepared.done:
        log.info("schema of {dsn} is up to date", dsn=dsn.redacted())
    for line in prepared.gone:
        log.warn("{dsn}: {what}", dsn=dsn.redacted(), what=line)


def prepare_database(dsn: DSN, declared: Mapping[str, DeclaredKind] | None = None) -> dict[str, Kind] | None:
    """Connect once, migrate, apply the declared kinds (the original four
    by default), fit the field tables to the real columns.

    Returns None when the server is unreachable for now; raises SystemExit
    with one line (password masked) when the database cannot be used at
    all, and with one line per breaking change when the kinds cannot be
    served on it.
    """
    dialect = dialect_for(dsn)
    try:
        prepared = migrate_on_own_connection(dialect, original_kinds() if declared is None else declared)
    except BreakingChanges as e:
        raise SystemExit(f"track: the event kinds cannot be served on {dsn.redacted()}: {e}") from None
    except Exception as e:
        message = str(e).replace(dsn.password, "***") if dsn.password else str(e)
        if dialect.waited_at_start(e):  # the failure table (track.storage.mysql.errors)
            log.warn("database {dsn} unreachable at start ({e}); acknowledging from the spool "
                     "until it appears", dsn=dsn.redacted(), e=message)
            return None
        raise SystemExit(f"track: cannot use database {dsn.redacted()}: {message}") from None
    log_migrations(dsn, prepared)
    return prepared.kinds


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


def load_limits(directory: str, kinds: Mapping[str, Kind]) -> dict[str, Kind]:
    """The field tables `kinds` with the limits last seen, or as declared."""
    try:
        with open(os.path.join(directory, LIMITS_FILE)) as f:
            limits = json.load(f)
    except (OSError, ValueError):
        return dict(kinds)
    if not isinstance(limits, dict):
        return dict(kinds)
    return {name: kind.with_string_limits(_wider(kind, limits.get(name, {}))) for name, kind in kinds.items()}


def _wider(kind: Kind, saved: Mapping[str, Any]) -> dict[str, Any]:
    """Saved column limits, but never below what the kind declares now: a
    longer maxLength is applied to the column before the spool's events
    reach it (the database's migrations run before the replay)."""
    declared = {f.name: f.max_length for f in kind.fields if f.type == "string"}
    return {name: [max(int(limit[0]), declared[name]), bool(limit[1])]
            for name, limit in saved.items() if name in declared and isinstance(limit, list) and len(limit) == 2}
