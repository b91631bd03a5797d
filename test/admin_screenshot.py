"""Take docs/admin-page.png: the live page of `twistd track --workers 2
--admin-http` after a minute of mixed traffic (accepted and refused events
of every kind), in the headless Chromium of track/test/browser.py.

    python test/admin_screenshot.py --dsn mysql://root@127.0.0.1:3306/track_test [--out docs/admin-page.png]

It stores events in that database: use a throwaway one.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from urllib.error import HTTPError
from urllib.request import Request, urlopen

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from track.test.browser import _launch
from track.test.mariadb import free_port
from track.test.process import TWISTD, child_env

GOOD = {
    "session": "Region=eu&SessionID=s-{n}&RemoteIP=203.0.113.{m}&SessionType=match&ProfileID={n}",
    "user": "ProfileID={n}&Region=na&Referrer=newsletter&Message=signed+up",
    "item": "ProfileID={n}&Region=eu&ItemName=Sword+of+{m}&ItemType=weapon&IsUGC=false&PriceGold={m}",
    "purchase": "ProfileID={n}&Region=asia&Currency=EUR&GrossAmount=4.99&NetAmount=4.10"
                "&PaymentProvider=card&Product=gems-500",
}
BAD = [
    ("user", "ProfileID=abc&Region=eu"),
    ("session", "Region=e1&SessionID=s&RemoteIP=1.2.3.4&SessionType=match"),
    ("purchase", "ProfileID=7&Region=eu&Currency=EURO&GrossAmount=4.999999&NetAmount=4&PaymentProvider=x"),
    ("item", "ProfileID=9&Region=eu&ItemName=Shield&ItemType=armor&IsUGC=maybe"),
]
AGENTS = ["MyGame/2.3 (Android 14)", "MyGame/2.3 (iOS 18.1)", "Mozilla/5.0 (X11; Linux x86_64) MyGame-Web/1.0"]


def post(port: int, kind: str, body: str) -> int:
    request = Request(f"http://127.0.0.1:{port}/api/1.0/track/{kind}/", data=body.encode(),
                      headers={"Content-Type": "application/x-www-form-urlencoded",
                               "User-Agent": random.choice(AGENTS)})
    try:
        with urlopen(request, timeout=10) as response:
            return int(response.status)
    except HTTPError as e:
        return int(e.code)


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dsn", required=True)
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "admin-page.png"))
    p.add_argument("--seconds", type=float, default=60.0, help="of traffic before the screenshot")
    args = p.parse_args()
    random.seed(7)
    tmp = tempfile.mkdtemp(prefix="track-shot-")
    public, admin = free_port(), free_port()
    log_path = os.path.join(tmp, "twistd.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([*TWISTD, "-n", "--pidfile=", "track", "--workers", "2",
                                 "--http", f"127.0.0.1:{public}", "--admin-http", str(admin), "--dsn", args.dsn,
                                 "--spool-dir", os.path.join(tmp, "spool")],
                                cwd=tmp, env=child_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while not re.search(rb"admin page on .*\n(.|\n)*worker 1\] track listening", read(log_path)):
            if time.time() > deadline or proc.poll() is not None:
                raise SystemExit("track did not start: see " + os.path.join(tmp, "twistd.log"))
            time.sleep(0.1)
        browser = _launch(os.path.join(tmp, "profile"))
        try:
            browser.set_window_size(1400, 1250)
            browser.get(f"http://127.0.0.1:{admin}/")
            start = time.time()
            n = 0
            while time.time() - start < args.seconds:
                n += 1
                phase = (time.time() - start) / args.seconds
                if random.random() < 0.08 + 0.2 * (0.4 < phase < 0.6):
                    kind, body = random.choice(BAD)
                else:
                    kind = random.choice(["session"] * 4 + ["user"] * 2 + ["item"] * 2 + ["purchase"])
                    body = GOOD[kind].format(n=1000 + n, m=n % 250)
                post(public, kind, body)
                time.sleep(0.02 + 0.06 * (phase > 0.75))
            time.sleep(2.5)  # two polls: the page shows the last events
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            browser.save_screenshot(args.out)
        finally:
            browser.quit()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
