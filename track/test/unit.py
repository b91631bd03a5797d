"""The fast tier: `trial track.test.unit` runs, in well under a minute, the
tests that need no MySQL server, no Chromium, no Galera, no private mariadbd
and no twistd child: the in-memory web app, the pipeline with a Clock, the
spool, SQLite, the options.  Run it while coding; `trial -j2 track` (what CI
runs) before a commit.

trial loads a module's `testSuite()` when it has one; `trial track` does not
load this module (its name does not start with test_), so nothing runs twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from twisted.trial.runner import TestLoader
from twisted.trial.unittest import TestSuite

MODULES = (
    "track.test.admin.test_feed",
    "track.test.events.test_main",
    "track.test.events.test_subset",
    "track.test.fields.test_compiled",
    "track.test.fields.test_declared",
    "track.test.fields.test_events",
    "track.test.pipeline.test_batcher",
    "track.test.pipeline.test_replay",
    "track.test.pipeline.test_replay_gone",
    "track.test.pipeline.test_writer",
    "track.test.run.test_declaration",
    "track.test.run.test_leftovers",
    "track.test.run.test_options",
    "track.test.run.test_reload_refusals",
    "track.test.run.test_run_logs",
    "track.test.run.test_run_service",
    "track.test.run.test_run_workers",
    "track.test.run.test_summaries",
    "track.test.spool.test_promises_fsync",
    "track.test.spool.test_spool",
    "track.test.storage.test_dsn",
    "track.test.storage.test_evolve_classify",
    "track.test.storage.test_failures",
    "track.test.storage.test_multihost_dsn",
    "track.test.storage.test_split",
    "track.test.storage.test_store",
    "track.test.storage.test_writable",
    "track.test.web.test_app",
    "track.test.web.test_batch",
    "track.test.web.test_body",
    "track.test.web.test_cors_openapi",
    "track.test.web.test_declared_kinds",
    "track.test.web.test_hostile",
    "track.test.web.test_properties",
    "track.test.web.test_ratelimit",
    "track.test.web.test_script",
    "track.test.web.test_twistedhttp",
)
# Tests in those modules that need a real part: every class whose name starts
# with "MySQL", and these (a class, or class.method).
EXCLUDED = frozenset({
    "OriginalSchemaTests",  # test_store: the original service's MySQL schema
    "FullDiskTests",  # test_spool: mounts a tmpfs
    "AtomicStoreTests.test_mysql",
})


def _tests(suite: Any) -> Iterator[Any]:
    for test in suite:
        if isinstance(test, TestSuite) or hasattr(test, "_tests"):
            yield from _tests(test)
        else:
            yield test


def _wanted(test: Any) -> bool:
    cls = type(test).__name__
    method = getattr(test, "_testMethodName", "")
    return not (cls.startswith("MySQL") or cls in EXCLUDED or f"{cls}.{method}" in EXCLUDED)


def testSuite() -> TestSuite:
    """The fast tier's tests, in the order of MODULES."""
    loader = TestLoader()
    return TestSuite([t for name in MODULES for t in _tests(loader.loadByName(name, recurse=True)) if _wanted(t)])
