"""The peer for benchmarks: what a Python team would otherwise write.

FastAPI + aiomysql, one INSERT and COMMIT per request, 201 after the commit.
A benchmark baseline only: not a dependency of track.  Needs
`pip install fastapi uvicorn aiomysql` (uvloop/httptools used if present).

    python test/peer_fastapi.py PORT mysql://user:pass@host:3306/db
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import aiomysql
import uvicorn
from fastapi import FastAPI, Request, Response

REQUIRED = ("Region", "SessionID", "RemoteIP", "SessionType")
SQL = ("INSERT INTO SessionEvent (Region, SessionID, RemoteIP, SessionType, Message, ProfileID, Created) "
       "VALUES (%s, %s, %s, %s, %s, %s, %s)")


def make_app(dsn: str) -> FastAPI:
    url = urlsplit(dsn)
    app = FastAPI()
    state: dict[str, aiomysql.Pool] = {}

    @app.on_event("startup")
    async def connect() -> None:
        state["pool"] = await aiomysql.create_pool(
            host=url.hostname, port=url.port or 3306, user=url.username or "root",
            password=url.password or "", db=url.path.lstrip("/"), minsize=10, maxsize=50,
            autocommit=False, charset="utf8mb4")

    @app.post("/api/1.0/track/session/")
    async def session(request: Request) -> Response:
        fields = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
        missing = [f for f in REQUIRED if not fields.get(f)]
        if missing:
            return Response(status_code=400, content=f"missing {missing}")
        profile = int(fields["ProfileID"]) if fields.get("ProfileID") else None
        async with state["pool"].acquire() as conn:
            async with conn.cursor() as cur:
                await cur.execute(SQL, (fields["Region"], fields["SessionID"], fields["RemoteIP"],
                                        fields["SessionType"], fields.get("Message"), profile,
                                        datetime.now(UTC).replace(tzinfo=None)))
            await conn.commit()
        return Response(status_code=201, media_type="text/plain; charset=utf-8")

    return app


if __name__ == "__main__":
    port, dsn = int(sys.argv[1]), sys.argv[2]
    print(f"listening on {port}", flush=True)
    uvicorn.run(make_app(dsn), host="127.0.0.1", port=port, access_log=False, log_level="warning")
