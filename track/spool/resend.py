"""Re-send dead letters once their cause is fixed.

    python -m track.spool resend SPOOL_DIR URL

Posts every dead letter under SPOOL_DIR (and its `worker-N` directories) to
the track service at URL, one event per request, with its MessageID, so a
resend that is interrupted and run again stores nothing twice.  Letters the
service takes (201) are gone from the file; letters it still refuses (a 4xx)
stay, with the new reason; on a 5xx, 408, 429 or no answer the command stops
and keeps the rest for the next run.  Exit status 0 when none are left.

The file is renamed to `events.resending.jsonl` while this runs, so the
running service keeps appending new dead letters beside it undisturbed
(both lock the file around a rename or an append, so no letter lands in a
file already taken).  It does not take the spool's own lock: it runs
beside the service by design.  Two resends of one spool at once: the
second exits at once naming the first's pid (`resend.lock`).
A re-sent event is stamped with the time it is re-sent; for user and item
events the service takes RemoteIP from X-Forwarded-For, which this command
sets to the original address, only when this host is a --trusted-proxy.
Standard library only, so it runs wherever Python does.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from track.spool.deadletters import DIRECTORY, EVENTS_FILE
from track.spool.disk import append_exclusively, rename_exclusively
from track.spool.lock import DirectoryLock, SpoolLocked

_RESENDING = "events.resending.jsonl"
RESEND_LOCK = "resend.lock"
_RETRY_LATER = {408, 429}


@dataclass
class Tally:
    sent: int = 0
    refused: int = 0
    kept: int = 0


def dead_letter_files(spool_dir: str) -> list[str]:
    """The dead-letter files of a spool directory and of its workers'."""
    dirs = [spool_dir, *sorted(glob.glob(os.path.join(spool_dir, "worker-*")))]
    return [os.path.join(d, DIRECTORY, EVENTS_FILE) for d in dirs
            if os.path.exists(os.path.join(d, DIRECTORY, EVENTS_FILE))
            or os.path.exists(os.path.join(d, DIRECTORY, _RESENDING))]


def post(url: str, fields: dict[str, Any], remote_ip: str | None, timeout: float) -> tuple[int | None, str]:
    """POST one event as JSON; (status, body), status None when no answer came."""
    headers = {"Content-Type": "application/json"}
    if remote_ip:
        headers["X-Forwarded-For"] = remote_ip
    request = urllib.request.Request(url, json.dumps(fields).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (OSError, urllib.error.URLError) as e:
        return None, str(e)


def resend_file(path: str, base: str, timeout: float, tally: Tally) -> bool:
    """Re-send one file's letters; False when the service asked to stop."""
    work = os.path.join(os.path.dirname(path), _RESENDING)
    if not os.path.exists(work):
        rename_exclusively(path, work)  # an interrupted run's file is finished first
    keep: list[dict[str, Any]] = []
    going = True
    with open(work, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            letter = json.loads(line)
            if not going or "type" not in letter:  # unreadable records stay for a person
                keep.append(letter)
                continue
            url = f"{base}/api/1.0/track/{letter['type']}/"
            status, body = post(url, letter["fields"], letter.get("received", {}).get("RemoteIP"), timeout)
            if status == 201:
                tally.sent += 1
                continue
            keep.append(letter)
            if status is None or status >= 500 or status in _RETRY_LATER:
                print(f"{url}: {status or 'no answer'} {body.strip()[:200]}; stopping, the rest is kept",
                      file=sys.stderr)
                going = False
            else:
                letter["error"] = f"resend refused: {status} {body.strip()}"
                tally.refused += 1
    if keep:
        append_exclusively(path, "".join(json.dumps(k, ensure_ascii=False) + "\n" for k in keep).encode())
        tally.kept += len(keep)
    os.unlink(work)
    return going


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m track.spool",
                                     description="Work with a track spool directory.")
    commands = parser.add_subparsers(dest="command", required=True)
    resend = commands.add_parser("resend", help="re-send dead letters to a running track service")
    resend.add_argument("spool_dir", help="the service's --spool-dir")
    resend.add_argument("url", help="the service, e.g. http://127.0.0.1:8080")
    resend.add_argument("--timeout", type=float, default=10.0, help="seconds per request (10)")
    args = parser.parse_args(argv)
    base = args.url.rstrip("/").split("/api/", 1)[0]
    try:  # one resend at a time; the service itself may run (it only appends)
        lock = DirectoryLock(args.spool_dir, RESEND_LOCK, "the dead letters of spool directory").acquire()
    except (SpoolLocked, OSError) as e:
        print(f"python -m track.spool resend: {e}", file=sys.stderr)
        return 2
    tally = Tally()
    for path in dead_letter_files(args.spool_dir):
        if not resend_file(path, base, args.timeout, tally):
            break
    lock.release()
    print(f"re-sent {tally.sent}; still refused {tally.refused}; kept for later {tally.kept}")
    return 0 if tally.kept == 0 else 1
