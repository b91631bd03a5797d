"""trial tests for track.

Hypothesis runs under the "ci" profile unless HYPOTHESIS_PROFILE names
another ("dev" explores new examples on every run):

- derandomized: a run's examples follow from the test alone, so CI passes or
  fails the same way every time, and a failure seen there is seen here;
- no example database: nothing is written to .hypothesis/ wherever trial runs
  (a derandomized run finds the same examples again anyway);
- a 2 s deadline per example: every property here parses or inflates at most
  a few KB, in microseconds to milliseconds, so 2 s means something is
  pathologically slow (say, a regex that backtracks), while the 200 ms
  default would fail on a loaded CI machine for no fault of the code.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import settings

DEADLINE = timedelta(seconds=2)

settings.register_profile("ci", derandomize=True, database=None, deadline=DEADLINE, print_blob=True)
settings.register_profile("dev", derandomize=False, database=None, deadline=DEADLINE, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
