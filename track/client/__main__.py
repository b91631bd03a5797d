"""`python -m track.client import URL FILE...` (see track.client.importer)."""

import sys

from track.client.importer import main

sys.exit(main())
