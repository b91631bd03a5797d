"""`python -m track.spool resend SPOOL_DIR URL`: see track.spool.resend."""

import sys

from track.spool.resend import main

sys.exit(main(sys.argv[1:]))
