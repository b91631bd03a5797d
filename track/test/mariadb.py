"""A throwaway MariaDB server for tests that must stop, crash or restart it.

The shared server on 127.0.0.1:3306 is used by many tests at once and must
never be disturbed, so tests of outages get a private `mariadbd` of their own:
its own datadir, port, socket and pid file under a directory the test owns.
Everything here blocks (it runs in setUp/cleanup), but every wait is bounded.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import pymysql
from twisted.trial.unittest import TestCase

from track.test import support as _support

# .ci/run fails a run whose output shows this marker: a test that needs a
# real part (MariaDB, mariadbd, Galera, Chromium) must run there, never be
# skipped because the part is missing.  Every such skip reason carries it.
REQUIRED_SKIPPED = "REQUIRED-SKIPPED"


def required(reason: str | None) -> str | None:
    """A skip reason for a missing real part, marked so CI refuses it (None: no skip)."""
    if reason is None or REQUIRED_SKIPPED in reason:
        return reason
    return f"{REQUIRED_SKIPPED}: {reason}"


# The shared server: support.MYSQL_SKIP with both markers (.ci/run also
# still greps for support's MYSQL-SKIPPED).
MYSQL_SKIP = required(_support.MYSQL_SKIP)

MARIADBD = "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
MARIADBD_SKIP: str | None = required(next(
    (f"{path} is missing (apt-get install mariadb-server)"
     for path in (MARIADBD, INSTALL_DB) if not os.access(path, os.X_OK)),
    None,
))

START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
INSTALL_TIMEOUT = 120.0
POLL_INTERVAL = 0.1
# sun_path is 108 bytes including the NUL; leave a little slack.
MAX_SOCKET_PATH = 100
# The shared server's datadir: refuse outright to point anything at it.
SHARED_DATADIR = "/var/lib/mysql"

# Small and fast: a test server holds a few rows, and many may run in a row.
# --no-defaults must come first so /etc/mysql/my.cnf (the shared server's
# datadir, socket and pid file) is never read.
_SERVER_OPTIONS = (
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=8M",
    "--innodb-flush-log-at-trx-commit=2",
    "--skip-log-bin",
    "--skip-name-resolve",
    "--character-set-server=utf8mb4",  # as the shared server is configured
    "--collation-server=utf8mb4_general_ci",
)

_live: set[ThrowawayMariaDB] = set()


def free_port() -> int:
    """A 127.0.0.1 port nobody listens on right now (bind to 0, read, close).

    Racy by nature (another process may bind it before we do), so only for
    mariadbd, which cannot be told port 0 and report the port it got; start()
    retries a lost race once.  twistd children listen on tcp:0 instead and
    report their port (see track.test.process.TwistdTrack)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ThrowawayMariaDB:
    """A private mariadbd in a temporary directory, with its own port and socket."""

    def __init__(self, basedir: str, port: int | None = None, options: Sequence[str] = (),
                 user: str | None = None) -> None:
        """`basedir` is a directory the test owns (e.g. `TestCase.mktemp()`);
        `port` None picks a free one, and a lost race for it is retried once
        at the first start (later starts keep the port the test already uses).
        `options` are added to every start's command line (a Galera node's
        wsrep settings, for example: see track.test.galera).  `user` is the
        account mariadbd runs as (default: ours); another one gets the whole
        basedir (and the socket's directory) before every start."""
        self.options = tuple(options)
        self.user = user or _user()
        self.basedir = os.path.abspath(basedir)
        os.makedirs(self.basedir, exist_ok=True)
        self.datadir = os.path.join(self.basedir, "data")
        if os.path.realpath(self.datadir).startswith(SHARED_DATADIR):
            raise ValueError(f"refusing to use the shared server's datadir: {self.datadir}")
        self.pid_file = os.path.join(self.basedir, "mariadbd.pid")
        self.log_file = os.path.join(self.basedir, "mariadbd.err")
        self.out_file = os.path.join(self.basedir, "mariadbd.out")
        # Private, not /tmp: at startup mariadbd deletes every #sql* file in its
        # tmpdir, which would pull temporary tables from under other servers.
        self.tmpdir = os.path.join(self.basedir, "tmp")
        os.makedirs(self.tmpdir, exist_ok=True)
        self.socket = os.path.join(self.basedir, "mariadbd.sock")
        self._socket_dir: str | None = None
        if len(self.socket) > MAX_SOCKET_PATH:
            self._socket_dir = tempfile.mkdtemp(prefix="mdb", dir="/tmp")
            self.socket = os.path.join(self._socket_dir, "s")
        self._auto_port = port is None
        self.port: int = free_port() if port is None else port
        self._process: subprocess.Popen[bytes] | None = None
        self._started_once = False

    @property
    def running(self) -> bool:
        """Whether the mariadbd we started is still alive."""
        return self._process is not None and self._process.poll() is None

    def dsn(self, database: str) -> str:
        """The DSN track takes for `database` on this server (root, no password)."""
        return f"mysql://root@127.0.0.1:{self.port}/{database}"

    def install(self) -> None:
        """Create the system tables in basedir/data, with a passwordless
        root@127.0.0.1 (we run as root, so --user=root; 'normal' auth rather
        than the default unix_socket so TCP logins work)."""
        self._hand_over()
        argv = [
            INSTALL_DB,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--tmpdir={self.tmpdir}",
            f"--user={self.user}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *_SERVER_OPTIONS,
        ]
        try:
            result = subprocess.run(
                argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"mariadb-install-db took over {INSTALL_TIMEOUT}s:\n{_text(e.output)}") from e
        if result.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed ({result.returncode}):\n{_text(result.stdout)}")

    def start(self, *extra: str) -> None:
        """Launch mariadbd and return once it accepts connections on our port.
        `extra` options are for this start only (`--wsrep-new-cluster`)."""
        if self.running:
            return
        first = not self._started_once
        try:
            self._start(extra)
        except _BindFailed:
            if not (first and self._auto_port):
                raise
            self.port = free_port()  # someone took our port between pick and bind
            self._start(extra)
        self._started_once = True

    def _start(self, extra: Sequence[str] = ()) -> None:
        argv = [
            MARIADBD,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--tmpdir={self.tmpdir}",
            f"--socket={self.socket}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={self.pid_file}",
            f"--log-error={self.log_file}",
            f"--user={self.user}",
            "--max-connections=200",
            *_SERVER_OPTIONS,
            *self.options,
            *extra,
        ]
        self._hand_over()
        log_start, out_start = _size(self.log_file), _size(self.out_file)
        # Own process group: a ^C at the terminal is for trial, not for the server.
        # Its stderr goes to the error log once that is open; before, to .out.
        with open(self.out_file, "ab") as out:
            self._process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        _live.add(self)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if not self.running:
                self._reap()
                log = "\n".join(filter(None, [self._log_tail(log_start), _tail(self.out_file, out_start)]))
                if "Can't start server: Bind on TCP/IP port" in log:
                    raise _BindFailed(log)
                raise RuntimeError(f"mariadbd exited during startup; {self.log_file}:\n{log}")
            try:
                if self._accepting():
                    return
            except _BindFailed:
                self.kill()
                raise
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"mariadbd not accepting connections after {START_TIMEOUT}s; "
                    f"{self.log_file}:\n{self._log_tail(log_start)}"
                )
            time.sleep(POLL_INTERVAL)

    def _hand_over(self) -> None:
        """Give basedir (and the socket's directory) to the account mariadbd runs as."""
        if self.user != _user():
            for top in filter(None, (self.basedir, self._socket_dir)):
                _chown_tree(top, self.user)

    def stop(self) -> None:
        """Clean shutdown (SIGTERM), SIGKILL if it will not go. Idempotent."""
        self._signal_and_wait(signal.SIGTERM, STOP_TIMEOUT)

    def kill(self) -> None:
        """Crash it (SIGKILL) so the next start runs crash recovery. Idempotent."""
        self._signal_and_wait(signal.SIGKILL, STOP_TIMEOUT)

    def close(self) -> None:
        """stop(), and remove the short socket directory made outside basedir."""
        self.stop()
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    def create_database(self, name: str) -> None:
        """CREATE DATABASE IF NOT EXISTS `name`, in utf8mb4."""
        quoted = "`" + name.replace("`", "``") + "`"
        self.execute(f"CREATE DATABASE IF NOT EXISTS {quoted} CHARACTER SET utf8mb4")

    def execute(self, sql: str, args: Any = None, database: str | None = None) -> list[tuple[Any, ...]]:
        """Run one statement as root over TCP and return its rows (autocommit)."""
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        finally:
            conn.close()

    def connect(self, database: str | None = None, timeout: float = 60) -> pymysql.connections.Connection[Any]:
        """A blocking pymysql connection as root over TCP, autocommit on; no
        step (connect, handshake, query) waits longer than `timeout`."""
        return pymysql.connect(
            host="127.0.0.1", port=self.port, user="root", password="", database=database,
            connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout, autocommit=True,
            charset="utf8mb4",
        )

    def _accepting(self) -> bool:
        """True once our own server (not a stranger on the port) takes a login."""
        try:
            conn = self.connect(timeout=2)  # a TCP connect and a root login, bounded
        except (OSError, pymysql.err.MySQLError):
            return False
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@socket")
                row = cur.fetchone()
        except pymysql.err.MySQLError:
            return False
        finally:
            conn.close()
        if row is None or row[0] != self.socket:
            raise _BindFailed(f"port {self.port} is answered by another server (socket {row!r})")
        return True

    def _signal_and_wait(self, sig: signal.Signals, timeout: float) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            try:
                process.send_signal(sig)
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        self._reap()

    def _reap(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            self._process = None
            _live.discard(self)

    def _log_tail(self, start: int = 0) -> str:
        return _tail(self.log_file, start) or "(error log is empty)"


class _BindFailed(RuntimeError):
    """Our port was taken (e.g. between free_port() and mariadbd binding it)."""


def throwaway_mariadb(case: TestCase, database: str = "track") -> ThrowawayMariaDB:
    """Install, start, create `database`; stop it (and remove nothing the test dir holds) at cleanup."""
    server = ThrowawayMariaDB(case.mktemp())
    case.addCleanup(server.close)
    server.install()
    server.start()
    server.create_database(database)
    return server


def _user() -> str:
    """mariadbd refuses to run as root unless told --user=root explicitly."""
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return "root"


def _chown_tree(top: str, user: str) -> None:
    """Give `top` and everything in it to `user`."""
    import pwd

    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(top):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.lchown(name, entry.pw_uid, entry.pw_gid)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _tail(path: str, start: int = 0, lines: int = 40) -> str:
    """The last `lines` lines written to `path` after offset `start`."""
    try:
        with open(path, "rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _text(output: bytes | str | None) -> str:
    if output is None:
        return ""
    return output.decode(errors="replace") if isinstance(output, bytes) else output


@atexit.register
def _kill_leftovers() -> None:
    """Never leave a test's mariadbd behind, even if a cleanup did not run."""
    for server in list(_live):
        server.kill()


def _self_test() -> None:
    """install, start, write, stop/start, kill/start, read back each time, stop."""
    with tempfile.TemporaryDirectory(prefix="mdbself") as tmp:
        server = ThrowawayMariaDB(os.path.join(tmp, "server"))
        try:
            t0 = time.monotonic()
            server.install()
            t1 = time.monotonic()
            server.start()
            t2 = time.monotonic()
            print(f"install {t1 - t0:.2f}s, start {t2 - t1:.2f}s, port {server.port}, socket {server.socket}")
            server.create_database("track")
            server.execute("CREATE TABLE t (id int PRIMARY KEY, v varchar(32)) ENGINE=InnoDB", database="track")
            server.execute("INSERT INTO t VALUES (1, %s)", ("\u00e9\u4e2d",), database="track")
            expected = [(1, "\u00e9\u4e2d")]

            def check(step: str) -> None:
                rows = server.execute("SELECT id, v FROM t", database="track")
                assert rows == expected, (step, rows)
                print(f"{step}: ok {rows}")

            check("first start")
            t = time.monotonic()
            server.stop()
            assert not server.running
            print(f"stop {time.monotonic() - t:.2f}s")
            server.stop()  # idempotent
            t = time.monotonic()
            server.start()
            print(f"restart {time.monotonic() - t:.2f}s")
            check("after stop/start")
            server.execute("INSERT INTO t VALUES (2, 'committed before the crash')", database="track")
            expected.append((2, "committed before the crash"))
            server.kill()
            assert not server.running
            server.kill()  # idempotent
            t = time.monotonic()
            server.start()
            print(f"start after kill {time.monotonic() - t:.2f}s")
            check("after kill/start")
            assert server.dsn("track") == f"mysql://root@127.0.0.1:{server.port}/track"
        finally:
            server.close()
        assert not server.running
    print("self-test passed")


if __name__ == "__main__":
    _self_test()
