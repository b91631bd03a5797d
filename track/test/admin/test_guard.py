"""The admin listener answers its operator only: a Host check against DNS
rebinding, headers that keep it out of frames, JSON errors, and an
optional bearer token (required when it listens beyond loopback)."""

from __future__ import annotations

import json
import os
from typing import Any

import treq
from twisted.python import usage
from twisted.trial.unittest import TestCase

from track.admin.guard import host_name
from track.run.options import Options
from track.test.admin.test_feed import serve_with_admin
from track.test.support import client_pool

EXPECTED = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
TOKEN = "t0ken-for-the-admin-9c1e"


class GuardTests(TestCase):
    async def get(self, port: int, path: str, host: str | None = None, token: str | None = None,
                  method: str = "GET") -> tuple[int, Any, bytes]:
        headers: dict[str | bytes, str | bytes] = {}
        if host is not None:
            headers["Host"] = host
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        response = await treq.request(method, f"http://127.0.0.1:{port}{path}", headers=headers,
                                      pool=client_pool(self))
        return response.code, response.headers, await response.content()

    def assertSecure(self, headers: Any, what: str) -> None:
        for name, value in EXPECTED.items():
            self.assertEqual(headers.getRawHeaders(name), [value], f"{name} on {what}")

    async def test_a_foreign_host_gets_421_json_and_no_data(self) -> None:
        """What a page on attacker.example gets after rebinding its name to 127.0.0.1."""
        _, admin = serve_with_admin(self)
        for path in ("/feed", "/", "/admin.js", "/healthz", "/readyz", "/metrics", "/nowhere"):
            code, headers, body = await self.get(admin, path, host=f"attacker.example:{admin}")
            self.assertEqual(code, 421, path)
            self.assertEqual(headers.getRawHeaders("content-type"), ["application/json"], path)
            self.assertEqual(json.loads(body)["error"], "misdirected request")
            self.assertSecure(headers, f"421 {path}")

    async def test_own_address_localhost_and_admin_host_names_are_answered(self) -> None:
        _, admin = serve_with_admin(self, "--admin-host", "track-admin.internal")
        for host in (f"127.0.0.1:{admin}", f"localhost:{admin}", "LOCALHOST.", f"track-admin.internal:{admin}",
                     "track-admin.internal"):
            code, _, _ = await self.get(admin, "/feed", host=host)
            self.assertEqual(code, 200, host)
        code, _, _ = await self.get(admin, "/feed", host="other.internal")
        self.assertEqual(code, 421)

    async def test_every_answer_carries_the_security_headers(self) -> None:
        _, admin = serve_with_admin(self)
        for path, method, status in (("/", "GET", 200), ("/feed", "GET", 200), ("/metrics", "GET", 200),
                                     ("/healthz", "GET", 200), ("/admin.css", "GET", 200),
                                     ("/nowhere", "GET", 404), ("/feed", "POST", 405)):
            code, headers, _ = await self.get(admin, path, method=method)
            self.assertEqual(code, status, path)
            self.assertSecure(headers, f"{method} {path}")

    async def test_404_and_405_are_json(self) -> None:
        _, admin = serve_with_admin(self)
        code, headers, body = await self.get(admin, "/nowhere")
        self.assertEqual((code, json.loads(body)), (404, {"error": "not found"}))
        self.assertEqual(headers.getRawHeaders("content-type"), ["application/json"])
        code, headers, body = await self.get(admin, "/feed", method="DELETE")
        self.assertEqual(code, 405)
        self.assertEqual(json.loads(body)["error"], "method not allowed")
        self.assertIn("GET", headers.getRawHeaders("allow")[0])

    async def test_a_token_is_required_on_every_data_request(self) -> None:
        _, admin = serve_with_admin(self, "--admin-token", TOKEN)
        for path in ("/feed", "/healthz", "/readyz", "/metrics"):
            code, headers, body = await self.get(admin, path)
            self.assertEqual(code, 401, path)
            self.assertEqual(json.loads(body)["error"], "unauthorized")
            self.assertEqual(headers.getRawHeaders("www-authenticate"), ['Bearer realm="track admin"'])
            self.assertSecure(headers, f"401 {path}")
            code, _, _ = await self.get(admin, path, token=TOKEN[:-1] + "x")
            self.assertEqual(code, 401, path)
            code, _, body = await self.get(admin, path, token=TOKEN)
            self.assertIn(code, (200, 503), path)
        # The page itself (no data in it) loads, to ask for the token.
        code, _, body = await self.get(admin, "/")
        self.assertEqual(code, 200)
        self.assertIn(b'src="auth.js"', body)
        code, _, body = await self.get(admin, "/auth.js")
        self.assertEqual(code, 200)
        self.assertIn(b"sessionStorage", body)

    async def test_token_file(self) -> None:
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(path, 0o600)
        _, admin = serve_with_admin(self, "--admin-token-file", path)
        self.assertEqual((await self.get(admin, "/feed"))[0], 401)
        self.assertEqual((await self.get(admin, "/feed", token=TOKEN))[0], 200)


class BindTests(TestCase):
    def parse(self, *argv: str) -> Options:
        options = Options()
        options.parseOptions(["--http", "tcp:0", *argv])
        return options

    def test_non_loopback_admin_without_token_is_refused_naming_the_option(self) -> None:
        for where in ("0.0.0.0:0", "tcp:0:interface=10.1.2.3", "tcp6:0:interface=\\:\\:"):
            with self.subTest(where=where):
                e = self.assertRaises(usage.UsageError, self.parse, "--admin-http", where)
                self.assertIn("--admin-token-file PATH (or --admin-token TOKEN)", str(e))

    def test_loopback_unix_or_with_token_is_accepted(self) -> None:
        self.parse("--admin-http", "8081")
        self.parse("--admin-http", "tcp:0:interface=127.0.0.1")
        self.parse("--admin-http", "tcp6:0:interface=\\:\\:1")
        self.parse("--admin-http", "unix:/tmp/track-admin-test.sock")
        self.parse("--admin-http", "0.0.0.0:0", "--admin-token", TOKEN)

    def test_token_file_readable_by_others_is_refused(self) -> None:
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write(TOKEN)
        os.chmod(path, 0o640)
        e = self.assertRaises(usage.UsageError, self.parse, "--admin-token-file", path)
        self.assertIn("chmod 600", str(e))

    def test_host_names(self) -> None:
        self.assertEqual(host_name(b"Example.COM.:8081"), ("example.com", "8081"))
        self.assertEqual(host_name(b"[::1]:8081"), ("::1", "8081"))
        self.assertEqual(host_name(b"[::1]"), ("::1", ""))
        self.assertEqual(host_name(b"localhost"), ("localhost", ""))
