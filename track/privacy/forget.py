"""`python -m track forget --dsn DSN --profile-id N [--spool-dir DIR] [--suppress]`

Deletes every event of one ProfileID: from each event table (every table
with ProfileID and MessageID columns, so a team's own kinds too), from the
spool and from the dead letters; prints a receipt, one JSON object.

Rows go in batches of BATCH: their EventIDs are read (a plain read, which
locks nothing), then deleted by primary key, each batch its own short
transaction, so a big table is never locked for long and inserts go on.

With `--suppress` the ID is recorded first in the suppression table, so
collectors stop storing its events (they read the table every 10 s);
after that long, the tables are swept once more for events stored in
between.  `--unsuppress` lifts it.

Exit status: 0 done, 2 usage, 1 the database failed, 75 (EX_TEMPFAIL) a
running collector holds the spool directory: stop it, or run forget
without --spool-dir and again with it once the collector has stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from track.privacy.spoolforget import SpoolInUse, forget_in_spool
from track.run.secrets import SecretError, choose_dsn
from track.storage.dialect import Dialect, dialect_for
from track.storage.dsn import DSNError, parse_dsn
from track.storage.suppression import REFRESH_SECONDS, TABLE, suppress, unsuppress

BATCH = 1000
EXIT_IN_USE = os.EX_TEMPFAIL


def event_tables(conn: Any, dialect: Dialect) -> list[str]:
    """Every table holding events with a ProfileID."""
    cursor = conn.cursor()
    try:
        if dialect.name == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        else:
            cursor.execute("SELECT DISTINCT TABLE_NAME FROM information_schema.COLUMNS "
                           "WHERE TABLE_SCHEMA = DATABASE() AND COLUMN_NAME = 'ProfileID' ORDER BY TABLE_NAME")
        names = [str(name) for (name,) in cursor.fetchall()]
        tables = [t for t in names if t != TABLE and {"ProfileID", "MessageID", "EventID"}
                  <= dialect.column_names(cursor, t)]
    finally:
        cursor.close()
    conn.commit()
    return tables


def delete_profile(conn: Any, dialect: Dialect, table: str, profile_id: int, batch: int = BATCH) -> int:
    """Delete `profile_id`'s rows of `table`, BATCH at a time; how many."""
    q, p = dialect.quote(table), dialect.placeholder
    deleted = 0
    last = 0
    cursor = conn.cursor()
    try:
        while True:
            cursor.execute(f"SELECT EventID FROM {q} WHERE ProfileID = {p} AND EventID > {p} "
                           f"ORDER BY EventID LIMIT {int(batch)}", (profile_id, last))
            ids = [int(event_id) for (event_id,) in cursor.fetchall()]
            conn.commit()
            if not ids:
                return deleted
            marks = ", ".join([p] * len(ids))
            cursor.execute(f"DELETE FROM {q} WHERE EventID IN ({marks}) AND ProfileID = {p}", (*ids, profile_id))
            deleted += cursor.rowcount
            conn.commit()
            last = ids[-1]
    finally:
        cursor.close()


def delete_everywhere(dialect: Dialect, profile_id: int) -> dict[str, int]:
    conn = dialect.connect()
    try:
        return {t: delete_profile(conn, dialect, t, profile_id) for t in event_tables(conn, dialect)}
    finally:
        conn.close()


def _on_connection(dialect: Dialect, work: Callable[[Any, Dialect, int], bool], profile_id: int) -> bool:
    conn = dialect.connect()
    try:
        return work(conn, dialect, profile_id)
    finally:
        conn.close()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m track forget", description=__doc__.split("\n\n")[1])
    p.add_argument("--dsn", help="the collector's database (or --dsn-file, or TRACK_DSN)")
    p.add_argument("--dsn-file", help="a file (readable by its owner only) holding the DSN")
    p.add_argument("--profile-id", required=True, type=int, help="the user to forget")
    p.add_argument("--spool-dir", help="the collector's --spool-dir, to forget the user there too")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--suppress", action="store_true", help="also stop storing this ID's later events")
    which.add_argument("--unsuppress", action="store_true", help="only lift an earlier --suppress")
    return p


def main(argv: Sequence[str], sleep: Callable[[float], None] = time.sleep) -> int:
    args = parser().parse_args(argv)
    try:
        dsn = parse_dsn(choose_dsn(args.dsn, args.dsn_file, os.environ))
    except (SecretError, DSNError) as e:
        print(f"track forget: {e}", file=sys.stderr)
        return 2
    dialect = dialect_for(dsn)
    pid: int = args.profile_id
    receipt: dict[str, Any] = {"profile_id": pid}
    try:
        if args.unsuppress:
            receipt["unsuppressed"] = _on_connection(dialect, unsuppress, pid)
        else:
            if args.suppress:  # first: collectors stop storing while the rest is removed
                receipt["suppressed"] = True
                _on_connection(dialect, suppress, pid)
            if args.spool_dir:
                removed = forget_in_spool(os.path.abspath(args.spool_dir), pid)
                receipt["spool"] = {"events": removed.spool_events, "segments_rewritten": removed.segments_rewritten,
                                    "directories": len(removed.directories)}
                receipt["dead_letters"] = removed.dead_letters
            tables = delete_everywhere(dialect, pid)
            if args.suppress:
                # Collectors read the list within REFRESH_SECONDS: sweep again after that.
                print(f"track forget: waiting {REFRESH_SECONDS + 1:g} s for running collectors to read "
                      "the suppression list", file=sys.stderr)
                sleep(REFRESH_SECONDS + 1)
                for table, n in delete_everywhere(dialect, pid).items():
                    tables[table] = tables.get(table, 0) + n
            receipt["tables"] = tables
    except SpoolInUse as e:
        print(f"track forget: the spool directory {e.args[0]} is in use by a running collector "
              f"({e.args[1]}); nothing was changed there. Stop the collector and run "
              "forget again, or forget in the database only (without --spool-dir) meanwhile.", file=sys.stderr)
        return EXIT_IN_USE
    except FileNotFoundError as e:
        print(f"track forget: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # the database: one line, never the DSN's password
        print(f"track forget: {dsn.redacted()}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    receipt["time"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(json.dumps(receipt, sort_keys=True))
    return 0
