"""`python -m track.client import URL FILE...`: NDJSON files into track.

Each line is one event object, with its kind in "type" (as the batch endpoint
takes them); a UTF-8 byte order mark at the start of a file is skipped.  `-`
reads standard input, and needs --source NAME.  A line without a MessageID
gets one derived from the file's name (not its directory; NAME for standard
input), the line's number and its text, so importing the same file again
stores nothing twice.  A line's Timestamp is sent as it is; a line without
one but with a Created (RFC 3339, or "YYYY-MM-DD HH:MM:SS[.ffffff]", UTC when
it names no zone) is sent with that time as its Timestamp, so the collector
stores it as the event's time, exactly (the import sends no SentAt: the
times in a file are not corrected for this machine's clock; the collector's
--max-event-age, 30 days by default, still bounds how old they may be).  Lines refused (here, or by the collector) go
to FILE.rejected.ndjson (stdin.rejected.ndjson for standard input) with their
reasons.  A file that cannot be read is reported and skipped; the others are
still imported.

The exit status is the worst of all files: 0 every line stored (or stored
before), 1 some lines refused, 2 a file could not be read (or a usage error).
The import waits for the collector as long as it takes: when standard error
is a terminal, a progress bar counts the events the collector acknowledged
and says "waiting for the collector" with the last error while it does not
answer; log lines are printed above the bar.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from track.client.events import InvalidEventError, JSONNumber
from track.client.sending import MAX_BATCH, Client, QueueFull

CHUNK = 20_000  # lines between flushes: bounds what is kept to name refused lines
OK, REFUSED, UNREADABLE = 0, 1, 2
BOM = "\ufeff"

log = logging.getLogger("track.client")


def message_id_for(source: str, number: int, text: str) -> str:
    """A MessageID that the same line of the same file always gets."""
    digest = hashlib.sha256(f"{source}\n{number}\n{text}".encode(errors="surrogatepass")).hexdigest()
    return "imp-" + digest[:48]


def timestamp_from_created(value: object) -> object:
    """A line's Created as a Timestamp the collector reads: RFC 3339 in UTC
    (a Created without a zone is UTC), or epoch milliseconds as they are."""
    if type(value) is int:
        return value
    if type(value) is not str:
        raise ValueError("must be a date and time as text, or epoch milliseconds")
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError("must be RFC 3339 or YYYY-MM-DD HH:MM:SS (UTC when no zone is given)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    text = when.astimezone(UTC).isoformat(timespec="microseconds" if when.microsecond else "seconds")
    return text.replace("+00:00", "Z")


@dataclass
class FileImport:
    """One file's import: what was sent, and what was refused."""

    name: str
    source: str  # what its MessageIDs derive from
    lines: int = 0
    blank: int = 0
    sent: int = 0
    refused: int = 0
    in_flight: dict[str, tuple[int, str]] = field(default_factory=dict)  # MessageID -> (line, text)
    _rejected: IO[str] | None = None

    @property
    def rejected_path(self) -> str:
        return ("stdin" if self.name == "-" else self.name) + ".rejected.ndjson"

    def reject(self, number: int, text: str, reasons: dict[str, Any]) -> None:
        if self._rejected is None:
            self._rejected = open(self.rejected_path, "w", encoding="utf-8")  # noqa: SIM115  # closed in close()
        self._rejected.write(json.dumps({"line": number, "reasons": reasons, "text": text}, ensure_ascii=False) + "\n")
        self.refused += 1

    def on_error(self, event: dict[str, Any], error: dict[str, Any]) -> None:
        """The collector refused an event: name its line."""
        number, text = self.in_flight.get(str(event.get("MessageID")), (0, json.dumps(event)))
        self.sent -= 1
        self.reject(number, text, {k: v for k, v in error.items() if k != "status"} | {"status": error.get("status")})

    def close(self) -> None:
        if self._rejected is not None:
            self._rejected.close()

    def summary(self) -> str:
        text = f"{self.name}: {self.lines} lines, {self.sent} events stored (or stored before), {self.refused} refused"
        if self.refused:
            text += f" (see {self.rejected_path})"
        return text + (f", {self.blank} blank" if self.blank else "")


class _Above(logging.Handler):
    """Log records printed through the bar's console: above the bar, never into it."""

    def __init__(self, console: Any) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.print(self.format(record), markup=False, highlight=False)


@contextmanager
def progress_bar(client: Client, name: str) -> Iterator[None]:
    """A bar of the events the collector acknowledged (drawn with rich, only
    on a terminal; rich is imported only here, so the client never needs it)."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,.0f} stored"),
                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=False) as progress:
        start = client.stored
        task = progress.add_task(name, total=None, status="")
        handler = _Above(progress.console)
        root = logging.getLogger()
        root.addHandler(handler)
        saved = [h for h in root.handlers if h is not handler]
        for h in saved:
            root.removeHandler(h)
        done = threading.Event()

        def refresh() -> None:
            while True:
                failing = client.failing
                status = f"waiting for the collector: {failing}" if failing else ""
                progress.update(task, completed=client.stored - start, status=status)
                if done.wait(0.25):
                    return

        updater = threading.Thread(target=refresh, daemon=True)
        updater.start()
        try:
            yield
        finally:
            done.set()
            updater.join()
            progress.update(task, completed=client.stored - start, status="")
            root.removeHandler(handler)
            for h in saved:
                root.addHandler(h)


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    return enumerate(stream, 1)


def _event(job: FileImport, number: int, raw: bytes) -> tuple[str, dict[str, Any]] | None:
    """The line's kind and fields, or None (blank, or rejected)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        job.reject(number, raw.decode("utf-8", "replace").strip(), {"line": f"not valid UTF-8: {e}"})
        return None
    if number == 1:
        text = text.removeprefix(BOM)
    text = text.strip()
    if not text:
        job.blank += 1
        return None
    try:
        event = json.loads(text, parse_float=JSONNumber)
    except ValueError as e:
        job.reject(number, text, {"line": f"malformed JSON: {e}"})
        return None
    if not isinstance(event, dict):
        job.reject(number, text, {"line": "must be one JSON object with a \"type\""})
        return None
    kind = event.pop("type", None)
    if "Created" in event:
        created = event.pop("Created")
        if "Timestamp" not in event:
            try:
                event["Timestamp"] = timestamp_from_created(created)
            except ValueError as e:
                job.reject(number, text, {"Created": str(e)})
                return None
    if event.get("MessageID") in (None, ""):  # the collector would make up a new one on every run
        event["MessageID"] = message_id_for(job.source, number, text)
    return kind, event


def import_file(client: Client, job: FileImport, stream: IO[bytes]) -> None:
    for number, raw in _lines(stream):
        job.lines = number
        parsed = _event(job, number, raw)
        if parsed is None:
            continue
        kind, event = parsed
        while True:
            try:
                message_id = client.track(kind, event)
            except InvalidEventError as e:
                job.reject(number, raw.decode("utf-8").removeprefix(BOM).strip(), e.fields)
                break
            except QueueFull:
                client.flush()
                continue
            job.sent += 1
            job.in_flight[message_id] = (number, raw.decode("utf-8").removeprefix(BOM).strip())
            break
        if len(job.in_flight) >= CHUNK:
            client.flush()
            job.in_flight.clear()
    client.flush()
    job.in_flight.clear()


def _open(name: str) -> IO[bytes]:
    return sys.stdin.buffer if name == "-" else open(name, "rb")  # closed by the caller


def import_files(url: str, names: Sequence[str], batch_size: int = 500, source: str | None = None,
                 out: Callable[[str], None] = print) -> int:
    status = OK
    current: list[FileImport] = []
    # sent_at=False: a line's time was written by another clock, long ago; the
    # collector stores it as it is, not corrected by this machine's clock.
    with Client(url, batch_size=batch_size, flush_interval=0.2, max_queue=4 * CHUNK, sent_at=False,
                on_error=lambda event, error: current[-1].on_error(event, error)) as client:
        for name in names:
            # The file's name, not its path: the same file imported again from
            # another directory or machine gets the same MessageIDs.
            job = FileImport(name, (source or "") if name == "-" else os.path.basename(name))
            try:
                stream = _open(name)
            except OSError as e:
                log.error("cannot read %s: %s; skipped", name, e.strerror or e)
                status = max(status, UNREADABLE)
                continue
            if os.path.exists(job.rejected_path):
                os.remove(job.rejected_path)  # from an earlier run: it would mislead
            current.append(job)
            try:
                with progress_bar(client, os.path.basename(name) if name != "-" else f"stdin ({source})"):
                    import_file(client, job, stream)
            except OSError as e:  # a read failed part way (a directory, an I/O error)
                client.flush()
                log.error("cannot read %s: %s; %d lines read before, the rest skipped", name, e.strerror or e,
                          job.lines)
                status = max(status, UNREADABLE)
            finally:
                job.close()
                if stream is not sys.stdin.buffer:
                    stream.close()
            out(job.summary())
            if job.refused:
                status = max(status, REFUSED)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m track.client", description="track's Python client.")
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("import", help="import NDJSON files of events", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    cmd.add_argument("url", metavar="URL", help="the collector, e.g. http://127.0.0.1:8080")
    cmd.add_argument("files", metavar="FILE", nargs="+", help="NDJSON files; - for standard input (needs --source)")
    cmd.add_argument("--source", metavar="NAME",
                     help="a name for standard input, unique to what it carries (e.g. day1.ndjson.gz): its lines' "
                          "MessageIDs derive from it, so two different streams never share one")
    cmd.add_argument("--batch-size", type=int, default=500, help="events per batch request (default 500)")
    args = parser.parse_args(argv)
    if not 1 <= args.batch_size <= MAX_BATCH:
        cmd.error(f"--batch-size must be 1 to {MAX_BATCH}")
    if "-" in args.files and not args.source:
        cmd.error("reading standard input (-) needs --source NAME: its lines' MessageIDs derive from that name")
    if args.source is not None and "-" not in args.files:
        cmd.error("--source names standard input; give - among the files")
    if args.files.count("-") > 1:
        cmd.error("- (standard input) can be given once")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    # Each refused line is in FILE.rejected.ndjson already: not also one log line each.
    logging.getLogger("track.client").addFilter(lambda r: not r.getMessage().startswith("track refused event"))
    return import_files(args.url, args.files, args.batch_size, args.source)
