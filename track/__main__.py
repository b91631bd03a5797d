"""`python -m track forget ...`: see track.privacy.forget."""

import sys

from track.privacy.forget import main

if sys.argv[1:2] != ["forget"]:
    print("usage: python -m track forget --dsn DSN --profile-id N [--spool-dir DIR] [--suppress | --unsuppress]",
          file=sys.stderr)
    sys.exit(2)
sys.exit(main(sys.argv[2:]))
