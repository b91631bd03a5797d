"""`python -m track.client import URL FILE...`: NDJSON files into track.

One event object a line, with its kind in "type" (as the batch endpoint
takes them); `-` reads standard input.  A line without a MessageID gets one
derived from the file's path, the line's number and its text, so importing
the same file again stores nothing twice.  Lines refused (here, or by the
collector) go to FILE.rejected.ndjson with their reasons; the exit status is
1 if there were any.  A progress bar is drawn (with rich) when standard error
is a terminal.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

from track.client import MAX_BATCH, Client, InvalidEventError, QueueFull
from track.fields.values import JSONNumber

CHUNK = 20_000  # lines between flushes: bounds what is kept to name refused lines


def message_id_for(source: str, number: int, text: str) -> str:
    """A MessageID that the same line of the same file always gets."""
    digest = hashlib.sha256(f"{source}\n{number}\n{text}".encode(errors="surrogatepass")).hexdigest()
    return "imp-" + digest[:48]


@dataclass
class FileImport:
    """One file's import: what was sent, and what was refused."""

    name: str
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


@contextmanager
def progress_bar(name: str, total: int | None) -> Iterator[Any]:
    """A callable advancing a rich progress bar by bytes read, drawn only on a
    terminal; rich is imported only here, so the client never needs it."""
    if not sys.stderr.isatty():
        yield lambda advance: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(name, total=total)
        yield lambda advance: progress.update(task, advance=advance)


def import_file(client: Client, job: FileImport, stream: IO[bytes], advance: Any) -> None:
    # The file's name, not its path: the same file imported again from
    # another directory or machine gets the same MessageIDs.
    source = "<stdin>" if job.name == "-" else os.path.basename(job.name)
    for number, raw in enumerate(stream, 1):
        advance(len(raw))
        job.lines = number
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError as e:
            job.reject(number, raw.decode("utf-8", "replace").strip(), {"line": f"not valid UTF-8: {e}"})
            continue
        if not text:
            job.blank += 1
            continue
        try:
            event = json.loads(text, parse_float=JSONNumber)
        except ValueError as e:
            job.reject(number, text, {"line": f"malformed JSON: {e}"})
            continue
        if not isinstance(event, dict):
            job.reject(number, text, {"line": "must be one JSON object with a \"type\""})
            continue
        kind = event.pop("type", None)
        if event.get("MessageID") in (None, ""):  # the collector would make up a new one on every run
            event["MessageID"] = message_id_for(source, number, text)
        while True:
            try:
                message_id = client.track(kind, event)
            except InvalidEventError as e:
                job.reject(number, text, e.fields)
                break
            except QueueFull:
                client.flush()
                continue
            job.sent += 1
            job.in_flight[message_id] = (number, text)
            break
        if len(job.in_flight) >= CHUNK:
            client.flush()
            job.in_flight.clear()
    client.flush()
    job.in_flight.clear()


def import_files(url: str, names: Sequence[str], batch_size: int = 500) -> int:
    jobs: list[FileImport] = []
    current: list[FileImport] = []
    with Client(url, batch_size=batch_size, flush_interval=0.2, max_queue=4 * CHUNK,
                on_error=lambda event, error: current[-1].on_error(event, error)) as client:
        for name in names:
            job = FileImport(name)
            try:
                stream = sys.stdin.buffer if name == "-" else open(name, "rb")  # noqa: SIM115
            except OSError as e:
                print(f"cannot read {name}: {e.strerror}", file=sys.stderr)
                return 2
            if os.path.exists(job.rejected_path):
                os.remove(job.rejected_path)  # from an earlier run: it would mislead
            jobs.append(job)
            current.append(job)
            total = None if name == "-" else os.fstat(stream.fileno()).st_size
            try:
                with progress_bar(os.path.basename(name), total) as advance:
                    import_file(client, job, stream, advance)
            finally:
                job.close()
                if stream is not sys.stdin.buffer:
                    stream.close()
            print(job.summary())
    return 1 if any(j.refused for j in jobs) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m track.client", description="track's Python client.")
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("import", help="import NDJSON files of events", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    cmd.add_argument("url", metavar="URL", help="the collector, e.g. http://127.0.0.1:8080")
    cmd.add_argument("files", metavar="FILE", nargs="+", help="NDJSON files; - for standard input")
    cmd.add_argument("--batch-size", type=int, default=500, help="events per batch request (default 500)")
    args = parser.parse_args(argv)
    if not 1 <= args.batch_size <= MAX_BATCH:
        parser.error(f"--batch-size must be 1 to {MAX_BATCH}")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    # Each refused line is in FILE.rejected.ndjson already: not also one log line each.
    logging.getLogger("track.client").addFilter(lambda r: not r.getMessage().startswith("track refused event"))
    return import_files(args.url, args.files, args.batch_size)
