"""The rules the server publishes for the default schema, as the client's
snapshot (track/client/rules.json) must hold them.

    PYTHONPATH=$PWD python -m track.test.client.snapshot   # rewrites rules.json
"""

from __future__ import annotations

import json
import os
from typing import Any

import track.client
from track.client.rules import rules_from_openapi
from track.fields.kinds import KINDS
from track.web.app import API_PREFIX
from track.web.openapi import openapi_document

PATH = os.path.join(os.path.dirname(track.client.__file__), "rules.json")


def server_rules() -> dict[str, Any]:
    return rules_from_openapi(openapi_document(KINDS, API_PREFIX, 1024 * 1024))


def text(rules: dict[str, Any]) -> str:
    return json.dumps(rules, indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    with open(PATH, "w", encoding="utf-8") as out:
        out.write(text(server_rules()))
