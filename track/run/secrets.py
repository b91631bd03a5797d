"""Where the DSN comes from: `--dsn`, `--dsn-file PATH` or `TRACK_DSN`.

A DSN's password on a command line is readable by every local user
(`ps`, /proc/PID/cmdline), so the file and the environment variable keep
it off the command line, and `--workers` children get it through an
inherited pipe (`--dsn-file /dev/fd/N`), never in their argv or
environment.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Mapping

DSN_ENV = "TRACK_DSN"
WORKER_DSN_FD = 4  # the pipe a worker reads its DSN from (3 is the listening socket)


class SecretError(ValueError):
    """A DSN source that cannot be used; the message names the problem, never the DSN."""


def read_secret_file(path: str) -> str:
    """The secret (a DSN, a token) in `path` (surrounding whitespace dropped).  Refused when
    users other than its owner may read or write it: a secret in such a
    file is no secret."""
    try:
        with open(path, encoding="utf-8") as f:
            mode = os.fstat(f.fileno()).st_mode
            if stat.S_ISREG(mode) and mode & 0o077:
                raise SecretError(
                    f"{path} can be read or written by other users (mode {stat.S_IMODE(mode):04o}); "
                    f"make it readable by its owner only: chmod 600 {path}")
            text = f.read(64 * 1024).strip()
    except OSError as e:
        raise SecretError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise SecretError(f"{path} is not UTF-8 text") from None
    if not text:
        raise SecretError(f"{path} is empty")
    return text


def choose_dsn(flag: str | None, path: str | None, env: Mapping[str, str]) -> str | None:
    """The DSN text from the one source given: `--dsn`, `--dsn-file`, or
    else TRACK_DSN (None: none of them, the SQLite default)."""
    if flag is not None and path is not None:
        raise SecretError("give --dsn or --dsn-file, not both")
    if path is not None:
        return read_secret_file(path)
    if flag is not None:
        return flag
    return env.get(DSN_ENV) or None


def pipe_holding(text: str) -> int:
    """The read end of a pipe that holds `text` and is closed for writing:
    a child that inherits it reads the text, and nothing else can."""
    data = text.encode("utf-8")
    read, write = os.pipe()
    try:
        # A DSN is far below the pipe's buffer (64 KiB on Linux): no blocking.
        os.write(write, data)
    finally:
        os.close(write)
    return read


def is_loopback(interface: str) -> bool:
    """Whether a listening interface is reachable from this machine only."""
    if interface == "localhost":
        return True
    try:
        return ipaddress.ip_address(interface).is_loopback
    except ValueError:
        return False  # "" (every interface) or a name
