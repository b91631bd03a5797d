"""`python -m track.events check FILE [--dsn DSN]` and `python -m track.events original`.

check: validates FILE and prints the plan a start with `--events FILE`
would apply to the database (DDL, one statement a line), changing nothing;
exit status 1 with the breaking changes (or the file's error) instead.
Without --dsn (or --dsn-file), the plan for an empty database (MySQL's DDL,
or SQLite's with --empty sqlite).  original: prints the shipped file of the
original four kinds, to start a file from.  Usage errors exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from track.events.files import original_text, served_kinds
from track.events.subset import EventsFileError
from track.run.secrets import SecretError, choose_dsn
from track.storage.dsn import DSN, DSNError, parse_dsn

PROG = "python -m track.events"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog=PROG, description="Event kinds declared in a file (--events FILE).")
    commands = top.add_subparsers(dest="command", required=True, metavar="{check,original}")
    check = commands.add_parser("check", help="print the plan a start with --events FILE would apply")
    check.add_argument("file", metavar="FILE", help="the events file (JSON, or YAML by its name)")
    check.add_argument("--dsn", help="the database to compare with (read only); default: an empty one")
    check.add_argument("--dsn-file", metavar="PATH", help="read the DSN from this file instead")
    check.add_argument("--empty", choices=("mysql", "sqlite"), default="mysql",
                       help="without a DSN: the empty database's dialect (default: mysql)")
    commands.add_parser("original", help="print the shipped file of the original four kinds")
    return top


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    if args.command == "original":
        sys.stdout.write(original_text())
        return 0
    return check(args.file, args.dsn, args.dsn_file, args.empty)


def check(path: str, dsn_flag: str | None, dsn_file: str | None, empty: str) -> int:
    from track.events.check import inspect  # the storage layer: only for check

    try:
        text = choose_dsn(dsn_flag, dsn_file, {})
        dsn: DSN | None = parse_dsn(text) if text is not None else None
    except (SecretError, DSNError) as e:
        print(f"{PROG} check: {e}", file=sys.stderr)
        return 2
    try:
        declared = served_kinds(path)
    except EventsFileError as e:
        print(f"{PROG} check: {e}", file=sys.stderr)
        return 1
    where = dsn.redacted() if dsn is not None else f"an empty {empty} database"
    try:
        report = inspect(declared, dsn, empty)
    except Exception as e:  # the database: one line, never the DSN's password
        message = str(e).replace(dsn.password, "***") if dsn is not None and dsn.password else str(e)
        print(f"{PROG} check: {where}: {type(e).__name__}: {message}", file=sys.stderr)
        return 1
    if report.breaking:
        n = len(report.breaking)
        print(f"{PROG} check: {path} cannot be served on {where}: {n} breaking change{'s' if n > 1 else ''}:",
              file=sys.stderr)
        for b in report.breaking:
            print(f"  {b}", file=sys.stderr)
        return 1
    print(f"-- {path} on {where}")
    if report.lines:
        print("\n".join(report.lines))
    print(f"-- {report.statements} statement{'' if report.statements == 1 else 's'}; nothing was changed"
          if report.statements or report.lines else "-- no change")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
