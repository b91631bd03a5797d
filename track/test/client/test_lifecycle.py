"""The client across a process's life: fork, SIGTERM, an interrupt, two
Clients on one queue_path, and a collector that says `Retry-After: 0`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import IO, Any

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, TestCase

from track.client import RETRY_AFTER_MIN, Client, QueueInUse, retry_delay
from track.client.transport import RETRY_AFTER_JITTER
from track.test.client.collector import CollectorMixin
from track.test.client.fakecollector import DeadPort, FakeCollector, stored
from track.test.process import child_env
from track.test.support import MYSQL_SKIP

WAIT = 60.0
USER = {"ProfileID": 1, "Region": "eu"}


def python(code: str, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def read_line(stream: IO[str] | None) -> str:
    assert stream is not None
    return stream.readline().strip()


class ForkTests(CollectorMixin, TestCase):
    skip = MYSQL_SKIP

    async def test_a_client_created_before_fork_stores_parent_and_child_events_exactly_once(self) -> None:
        """os.fork and multiprocessing (whose children leave by os._exit):
        each child sends its own events, never its parent's."""
        base = await self.start_collector()
        code = """
            import multiprocessing, os, sys
            from track.client import Client
            c = Client(sys.argv[1], flush_interval=60)
            def track(who, count):
                for n in range(count):
                    print(c.track("user", {"ProfileID": n, "Region": who}), flush=True)
            track("parent", 100)  # queued, unsent (flush_interval=60) when the children are forked
            pid = os.fork()
            if pid == 0:
                track("child", 100)
                sys.exit(0)  # atexit sends them
            os.waitpid(pid, 0)
            p = multiprocessing.get_context("fork").Process(target=track, args=("mp", 100))
            p.start()
            p.join()
            track("parent", 100)
            c.close()
        """
        child = python(code, base)
        out, err = await deferToThread(child.communicate, timeout=WAIT)
        self.assertEqual(child.returncode, 0, err)
        ids = out.split()
        self.assertEqual(len(ids), 400)
        self.assertEqual(self.message_ids("UserEvent"), sorted(ids))  # each once
        regions = dict(self.rows("SELECT Region, COUNT(*) FROM UserEvent GROUP BY Region"))
        self.assertEqual(regions, {"parent": 200, "child": 100, "mp": 100})

    async def test_a_forked_child_uses_no_inherited_queue_path(self) -> None:
        base = await self.start_collector()
        path = os.path.abspath(self.mktemp()) + ".sqlite3"
        code = """
            import os, sys
            from track.client import Client
            c = Client(sys.argv[1], queue_path=sys.argv[2], flush_interval=60)
            print(c.track("user", {"ProfileID": 1, "Region": "parent"}), flush=True)
            pid = os.fork()
            if pid == 0:
                print(c.track("user", {"ProfileID": 2, "Region": "child"}), flush=True)
                print("child pending", c.pending, c.queue_path, file=sys.stderr, flush=True)
                sys.exit(0)
            os.waitpid(pid, 0)
            print("parent pending", c.pending, file=sys.stderr, flush=True)
            c.close()
        """
        child = python(code, base, path)
        out, err = await deferToThread(child.communicate, timeout=WAIT)
        self.assertEqual(child.returncode, 0, err)
        self.assertIn("child pending 1 None", err)  # its own queue, in memory: not the parent's event
        self.assertIn("parent pending 1", err)  # the child took nothing out of the parent's file
        self.assertEqual(self.message_ids("UserEvent"), sorted(out.split()))

    async def test_a_child_forked_while_a_sending_thread_imports_does_not_hang(self) -> None:
        """A fork copies the import locks a sending thread holds, never
        released in the child: a child is forked at every import a sending
        thread makes (paused there), and each must send and exit (it hung in
        its first connect when the threads imported the idna codec)."""
        base = await self.start_collector()
        code = """
            import os, signal, sys, threading, time
            from track.client import Client
            paused, resume = threading.Semaphore(0), threading.Semaphore(0)
            parent = os.getpid()
            def pause_sending_threads_in_imports(event, args):
                if (event == "import" and os.getpid() == parent
                        and threading.current_thread().name.startswith("track-client-")):
                    print("a sending thread imports", args[0], file=sys.stderr, flush=True)
                    paused.release()
                    resume.acquire(timeout=30)
            sys.addaudithook(pause_sending_threads_in_imports)
            c = Client(sys.argv[1], flush_interval=0)
            print(c.track("user", {"ProfileID": 0, "Region": "parent"}), flush=True)
            children = []
            def fork():
                pid = os.fork()
                if pid == 0:
                    print(c.track("user", {"ProfileID": len(children) + 1, "Region": "child"}), flush=True)
                    sys.exit(0)
                children.append(pid)
            deadline = time.monotonic() + 30
            while not c.stored and time.monotonic() < deadline:
                if paused.acquire(timeout=0.01):  # a sending thread is inside an import: fork now
                    fork()
                    resume.release()
            fork()  # and once the threads are at work
            hung = 0
            deadline = time.monotonic() + 30
            for pid in children:
                while os.waitpid(pid, os.WNOHANG) == (0, 0):
                    if time.monotonic() > deadline:
                        os.kill(pid, signal.SIGKILL)
                        os.waitpid(pid, 0)
                        hung += 1
                        break
                    time.sleep(0.05)
            print(f"{len(children)} children, {hung} hung", file=sys.stderr, flush=True)
            c.close()
        """
        child = python(code, base)
        out, err = await deferToThread(child.communicate, timeout=2 * WAIT)
        self.assertEqual(child.returncode, 0, err)
        self.assertIn("children, 0 hung", err)
        self.assertEqual(self.message_ids("UserEvent"), sorted(out.split()))


class ReportTests(TestCase):
    """What was not stored is reported in one WARNING naming how many."""

    def start(self, queue_path: str = "") -> tuple[subprocess.Popen[str], DeadPort]:
        """A child that tracked 500 events nobody stores, then waits.  In
        short sleeps: a signal that lands after "tracked" is printed but
        before the sleep's system call only sets CPython's flag, read when the
        sleep ends (time.sleep(600) then ignored the test's SIGINT)."""
        dead = DeadPort()  # nothing is ever stored
        self.addCleanup(dead.release)
        code = """
            import sys, time
            from track.client import Client
            c = Client(sys.argv[1], timeout=1, queue_path=sys.argv[2] or None)
            for n in range(500):
                c.track("user", {"ProfileID": n, "Region": "eu"})
            print("tracked", flush=True)
            while True:  # not one time.sleep(600): see start()'s docstring
                time.sleep(0.1)
        """
        child = python(code, dead.url, queue_path)
        self.addCleanup(child.wait)
        self.addCleanup(child.kill)
        self.assertEqual(read_line(child.stdout), "tracked")
        return child, dead

    def test_sigterm_reports_the_events_lost(self) -> None:
        child, _ = self.start()
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=WAIT)
        self.assertEqual(child.returncode, 128 + signal.SIGTERM)
        lost = [line for line in err.splitlines() if "events lost" in line]
        self.assertEqual(len(lost), 1, err)
        self.assertIn("500 events lost: not acknowledged by the collector before close", lost[0])

    def test_sigterm_with_queue_path_reports_the_events_left_in_it(self) -> None:
        path = os.path.abspath(self.mktemp()) + ".sqlite3"
        child, _ = self.start(path)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=WAIT)
        self.assertEqual(child.returncode, 128 + signal.SIGTERM)
        self.assertIn(f"500 events stay in {path} for the next Client", err)

    def test_an_interrupt_at_exit_reports_the_events_lost(self) -> None:
        child, _ = self.start()
        child.send_signal(signal.SIGINT)  # KeyboardInterrupt: at exit the client waits to send
        assert child.stderr is not None
        for line in child.stderr:
            if "sending 500 events before exit; interrupt to abandon them" in line:
                break
        child.send_signal(signal.SIGINT)  # abandon them
        _, err = child.communicate(timeout=WAIT)
        self.assertIn("500 events lost: not acknowledged by the collector before close (interrupted)", err)

    def test_an_interrupt_that_lands_on_another_thread_still_ends_the_wait_at_exit(self) -> None:
        """A signal's handler runs on the main thread, but the kernel may run
        its C half on any thread, or just before the main thread blocks: then
        only a flag is set.  The exit's wait must wake to read it (it waited
        in an unbounded join, and the process hung at exit)."""
        dead = DeadPort()
        self.addCleanup(dead.release)
        code = """
            import signal, sys, threading
            from track.client import Client
            c = Client(sys.argv[1], timeout=1)
            for n in range(500):
                c.track("user", {"ProfileID": n, "Region": "eu"})
            main = threading.main_thread().ident
            def main_frame():
                frame = sys._current_frames().get(main)
                return frame.f_code.co_name if frame else ""
            def interrupt_once_the_exit_waits():
                while main_frame() != "_wait_for_tstate_lock":  # in its join
                    threading.Event().wait(0.01)
                signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # the C half runs here
            threading.Thread(target=interrupt_once_the_exit_waits, daemon=True).start()
            sys.exit(0)  # at exit the client waits to send
        """
        child = python(code, dead.url)
        self.addCleanup(child.wait)
        self.addCleanup(child.kill)
        _, err = child.communicate(timeout=WAIT)
        self.assertIn("sending 500 events before exit; interrupt to abandon them", err)
        self.assertIn("500 events lost: not acknowledged by the collector before close (interrupted)", err)

    def test_the_sending_threads_leave_ctrl_c_and_sigterm_to_the_main_thread(self) -> None:
        """The kernel hands a process's signal to any thread that does not
        block it; taken by a sending thread, Ctrl-C did not wake the main
        thread's time.sleep() (nor the exit's wait)."""
        if not sys.platform.startswith("linux"):
            raise SkipTest("reads /proc/self/task/*/status")
        dead = DeadPort()
        self.addCleanup(dead.release)
        client = Client(dead.url)
        self.addCleanup(client.close, 0.1)
        client.track("user", USER)
        for thread in client._threads:
            with open(f"/proc/self/task/{thread.native_id}/status") as status:
                blocked = int(next(line for line in status if line.startswith("SigBlk:")).split()[1], 16)
            self.assertEqual([bool(blocked & 1 << (number - 1)) for number in (signal.SIGINT, signal.SIGTERM,
                                                                              signal.SIGSEGV)],
                             [True, True, False], thread.name)

    def test_close_reports_the_events_lost(self) -> None:
        dead = DeadPort()
        self.addCleanup(dead.release)
        client = Client(dead.url)
        for n in range(7):
            client.track("user", {**USER, "ProfileID": n})
        with self.assertLogs("track.client", "WARNING") as logs:
            client.close(0.2)
        self.assertEqual([r.getMessage() for r in logs.records if "lost" in r.getMessage()],
                         ["track client: 7 events lost: not acknowledged by the collector before close "
                          "(not sent within 0.2 s: [Errno 111] Connection refused)"])


class QueuePathLockTests(TestCase):
    def test_a_second_client_on_the_same_queue_path_is_refused(self) -> None:
        path = os.path.abspath(self.mktemp()) + ".sqlite3"
        dead = DeadPort()
        self.addCleanup(dead.release)
        first = Client(dead.url, queue_path=path)
        self.addCleanup(first.close, 0.1)
        with self.assertRaises(QueueInUse) as caught:
            Client(dead.url, queue_path=path)
        self.assertIn(f"queue_path {path} is in use by another track Client", str(caught.exception))
        other = subprocess.run([sys.executable, "-c", "import sys; from track.client import Client\n"
                                "Client(sys.argv[1], queue_path=sys.argv[2])", dead.url, path],
                               env=child_env(), capture_output=True, text=True, timeout=WAIT)
        self.assertNotEqual(other.returncode, 0)
        self.assertIn(f"QueueInUse: queue_path {path} is in use by another track Client", other.stderr)
        first.close(0.1)
        Client(dead.url, queue_path=path).close(0.1)  # free again once closed


class RetryAfterTests(TestCase):
    def test_retry_after_zero_or_past_waits_at_least_half_a_second_with_jitter(self) -> None:
        delays = [retry_delay(value, 1) for value in ("0", "Thu, 01 Jan 1970 00:00:00 GMT") for _ in range(100)]
        self.assertTrue(all(RETRY_AFTER_MIN <= d <= RETRY_AFTER_MIN * (1 + RETRY_AFTER_JITTER) for d in delays))
        self.assertGreater(len(set(delays)), 100)  # not in step
        self.assertTrue(7 <= retry_delay("7", 1) <= 7 * (1 + RETRY_AFTER_JITTER))

    def test_a_collector_answering_retry_after_zero_is_not_hammered(self) -> None:
        answers = iter([(503, {"Retry-After": "0"}, {"error": "busy"})] * 4)
        fake = FakeCollector(lambda events: next(answers, None) or stored(events))
        self.addCleanup(fake.stop)
        client = Client(fake.url)
        self.addCleanup(client.close, 5)
        client.track("user", USER)
        started = time.monotonic()
        self.assertTrue(client.flush(WAIT))
        self.assertEqual(len(fake.requests), 5)
        gaps = [b.at - a.at for a, b in zip(fake.requests, fake.requests[1:], strict=False)]
        self.assertTrue(all(gap >= RETRY_AFTER_MIN for gap in gaps), gaps)  # not a busy loop
        self.assertGreaterEqual(time.monotonic() - started, 4 * RETRY_AFTER_MIN)
