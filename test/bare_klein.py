"""The floor for benchmarks: a bare Klein route that answers 201, with no
parsing, no validation and no database.  Usage: python bare_klein.py PORT"""

from __future__ import annotations

import sys

from klein import Klein
from twisted.internet import reactor
from twisted.web.server import Site

app = Klein()


@app.route("/api/1.0/track/session/", methods=["POST"])
def session(request):  # type: ignore[no-untyped-def]
    request.setResponseCode(201)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    return b""


class QuietSite(Site):
    """No access log, as in track: measure the route, not the logging."""

    def log(self, request):  # type: ignore[no-untyped-def]
        pass


if __name__ == "__main__":
    port = reactor.listenTCP(int(sys.argv[1]), QuietSite(app.resource()), interface="127.0.0.1")
    print(f"listening on {port.getHost().port}", flush=True)
    reactor.run()
