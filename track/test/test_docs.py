"""The README, docs/ and CONTRIBUTING.md say only what is true.

A newcomer pastes the examples: every `python` block and every `sh` block
that talks to the collector runs here, as written, against `twistd -n track`
on a free port with SQLite (the port put in place of 8080, the admin
listener's in place of 8081). A `curl -i` whose comment line above starts
with a status (`# 201 ...`, `# 400: ...`) must get that status, and when the
comment line below it is a JSON object, that body. The conventions are
CONTRIBUTING.md's ("The examples in the docs run"). Besides: every relative
link and anchor leads somewhere, every `json` block parses (as one document,
or one a line), and the options
table of docs/operations.md lists exactly the options `twistd track` takes,
with their defaults.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from track.test.process import PROJECT_ROOT, TWISTD, TwistdTrack, child_env

DOCS_ROOT_ENV = "TRACK_DOCS_ROOT"  # the checkout, when the tests import an installed track (.ci/run)


def docs_root() -> str:
    """Where README.md and docs/ are: the checkout this track was imported
    from, or the one TRACK_DOCS_ROOT names (CI runs the installed package)."""
    return os.environ.get(DOCS_ROOT_ENV) or PROJECT_ROOT


def doc_paths() -> list[str]:
    names = sorted(n for n in os.listdir(os.path.join(docs_root(), "docs")) if n.endswith(".md"))
    return ["README.md", "CONTRIBUTING.md", *(f"docs/{name}" for name in names)]


def skip_without_docs() -> None:
    if not os.path.exists(os.path.join(docs_root(), "docs")):
        raise SkipTest(f"REQUIRED-SKIPPED: no docs/ beside the track under test; set {DOCS_ROOT_ENV} "
                       "to the checkout")


NOT_RUN = "# not run:"  # the first line of a block the test leaves alone, with the reason
SERVER_STANDS_IN = ("twistd ", "pip ")  # commands the test server takes the place of
CORS_ORIGIN = "https://shop.example"  # the origin docs/api.md starts its collector with
_FENCE = re.compile(r"^( *)```(\S*)[^\n]*\n(.*?)^\1```\s*$", re.M | re.S)
_STATUS_COMMENT = re.compile(r"^#\s*(\d{3})\b")
_STATUS_LINE = re.compile(rb"^HTTP/1\.[01] (\d{3})", re.M)
_LINK = re.compile(r"\]\(([^)\s]+)\)")


@dataclass
class Block:
    path: str
    line: int
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def runs(self) -> bool:
        return not self.text.startswith(NOT_RUN)


@dataclass
class Command:
    text: str
    status: int | None = None  # the status the comment above it names
    body: Any = None  # the JSON the comment below it shows
    comments: list[str] = field(default_factory=list)


def read(path: str) -> str:
    with open(os.path.join(docs_root(), path), encoding="utf-8") as f:
        return f.read()


def blocks(path: str) -> list[Block]:
    """The fenced code blocks of a Markdown file, with their language tags."""
    text = read(path)
    return [Block(path, text.count("\n", 0, m.start()) + 1, m.group(2), textwrap.dedent(m.group(3)))
            for m in _FENCE.finditer(text)]


def all_blocks() -> Iterator[Block]:
    for path in doc_paths():
        yield from blocks(path)


def _complete(text: str) -> bool:
    """Whether a shell command's text is whole: no open quote, no trailing backslash."""
    if text.endswith("\\"):
        return False
    try:
        shlex.split(text.replace("$'", "'"))
    except ValueError:
        return False
    return True


def commands(script: str) -> list[Command]:
    """A shell block as commands (continuation lines and multi-line quotes
    joined), each with the status and the JSON body its comments name."""
    found: list[Command] = []
    comments: list[str] = []
    pending = ""
    for line in script.splitlines():
        if pending:
            pending += "\n" + line
        elif line.startswith("#"):
            if found and not comments and line.startswith("# {"):
                try:
                    found[-1].body = json.loads(line[2:])
                except ValueError:
                    pass
            comments.append(line)
            continue
        elif not line.strip():
            comments = []
            continue
        else:
            pending = line
        if _complete(pending):
            status = next((int(m.group(1)) for c in comments if (m := _STATUS_COMMENT.match(c))), None)
            found.append(Command(pending, status, comments=comments))
            pending, comments = "", []
    if pending:
        raise AssertionError(f"an unfinished command: {pending!r}")
    return found


def talks_to_collector(block: Block) -> bool:
    return "localhost:8080" in block.text or "127.0.0.1:8081" in block.text


class ExamplesTests(TestCase):
    """Every example a newcomer would paste, run against a real collector."""

    timeout = 120

    async def test_examples_run_as_written(self) -> None:
        skip_without_docs()
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        proc = TwistdTrack(["--http", "tcp:0:interface=127.0.0.1", "--cors-origin", CORS_ORIGIN,
                            "--admin-http", "tcp:0:interface=127.0.0.1"], cwd)
        self.addCleanup(proc.stop)
        base = await proc.ready
        admin = await proc.admin()
        public, private = base.split("//")[1], admin.split("//")[1]

        def place(text: str) -> str:
            return (text.replace("localhost:8080", public).replace("127.0.0.1:8081", private)
                    .replace("collector.example:8080", public))

        env = child_env()
        env.pop("TRACK_DSN", None)
        env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])  # `python` is this one
        failures: list[str] = []
        ran = 0
        for block in all_blocks():
            if not block.runs:
                continue
            if block.lang == "python":
                ran += 1
                out, err, code = await getProcessOutputAndValue(
                    sys.executable, ["-c", place(block.text)], env=env, path=cwd, reactor=reactor)
                if code != 0:
                    failures.append(f"{block.where}: python exited {code}:\n{(out + err).decode(errors='replace')}")
            elif block.lang == "sh" and talks_to_collector(block):
                for command in commands(block.text):
                    if command.text.startswith(SERVER_STANDS_IN):
                        continue
                    ran += 1
                    failure = await self.check_command(command, place(command.text), env, cwd)
                    if failure:
                        failures.append(f"{block.where}: {command.text.splitlines()[0]}\n  {failure}")
        self.assertGreater(ran, 20, "the examples were not found")
        if failures:
            self.fail(f"{len(failures)} of {ran} examples do not run as written:\n\n" + "\n\n".join(failures))

    async def check_command(self, command: Command, text: str, env: dict[str, str], cwd: str) -> str | None:
        """What is wrong with the command's outcome, if anything."""
        out, err, code = await getProcessOutputAndValue(
            "/bin/bash", ["-o", "pipefail", "-c", text], env=env, path=cwd, reactor=reactor)
        if code != 0:
            return f"exited {code}: {(out + err).decode(errors='replace')[-500:]}"
        if command.status is None:
            return None
        if "curl -i" not in text:
            return "a status is given, but the curl has no -i to show it"
        statuses = _STATUS_LINE.findall(out)
        if not statuses or int(statuses[-1]) != command.status:
            return f"expected {command.status}, got {out[:300]!r}"
        if command.body is not None:
            body = out.rsplit(b"\r\n\r\n", 1)[-1]
            try:
                got = json.loads(body)
            except ValueError:
                return f"expected the body {command.body!r}, got {body[:300]!r}"
            if got != command.body:
                return f"expected the body {command.body!r}, got {got!r}"
        return None


class ConventionTests(SynchronousTestCase):
    """What keeps the examples checkable."""

    def test_commands_are_parsed(self) -> None:
        """Statuses and bodies are read from the comments; quotes span lines."""
        found = commands("# 201 Created\ncurl -i -d '{\"a\":\n 1}' \\\n  http://x/\n# {\"ok\": 1}\n\n"
                         "# 400: bad\ncurl -i http://x/\n")
        self.assertEqual([(c.status, c.body) for c in found], [(201, {"ok": 1}), (400, None)])
        self.assertIn("http://x/", found[0].text)

    def test_every_block_has_a_language(self) -> None:
        """An untagged block could not be told apart: Python, shell or an answer."""
        skip_without_docs()
        untagged = [b.where for b in all_blocks() if not b.lang]
        self.assertEqual(untagged, [])

    def test_every_curl_is_run(self) -> None:
        """A curl to another host, or in a block the test does not run, is marked with the reason."""
        skip_without_docs()
        hidden = [b.where for b in all_blocks()
                  if b.runs and "curl " in b.text and not (b.lang == "sh" and talks_to_collector(b))]
        self.assertEqual(hidden, [])

    def test_json_blocks_parse(self) -> None:
        """A json block is one document (a file), or one a line (answers, NDJSON)."""
        skip_without_docs()
        for block in all_blocks():
            if block.lang == "json":
                try:
                    json.loads(block.text)  # one document (an events file), or else one a line
                    continue
                except ValueError:
                    pass
                for line in filter(None, block.text.splitlines()):
                    with self.subTest(where=block.where, line=line):
                        json.loads(line)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


class LinkTests(SynchronousTestCase):
    def test_relative_links_lead_somewhere(self) -> None:
        skip_without_docs()
        broken = []
        for path in doc_paths():
            here = os.path.dirname(path)
            for target in _LINK.findall(read(path)):
                if re.match(r"[a-z]+:", target):
                    continue
                file, _, anchor = target.partition("#")
                linked = os.path.normpath(os.path.join(here, file)) if file else path
                if not os.path.exists(os.path.join(docs_root(), linked)):
                    broken.append(f"{path}: {target}")
                elif anchor and linked.endswith(".md"):
                    slugs = {_slug(h) for h in re.findall(r"^#+ (.*)$", read(linked), re.M)}
                    if anchor not in slugs:
                        broken.append(f"{path}: {target} (no such heading)")
        self.assertEqual(broken, [])


def _table_options() -> dict[str, str]:
    """docs/operations.md's options table: each long option and its default column."""
    rows = re.findall(r"^\|\s*(`-[^|]*?)\s*\|\s*([^|]*?)\s*\|", read("docs/operations.md"), re.M)
    table = {}
    for names, default in rows:
        long_name = re.search(r"--([a-z0-9-]+)", names)
        if long_name:
            table[long_name.group(1)] = default.strip()
    return table


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class OptionsTableTests(SynchronousTestCase):
    """The table in docs/operations.md cannot drift from `twistd track --help`."""

    def setUp(self) -> None:
        skip_without_docs()
        helptext = subprocess.run([*TWISTD, "track", "--help"], env=child_env(), cwd=PROJECT_ROOT,
                                  capture_output=True, text=True, check=True, timeout=60).stdout
        self.help_defaults: dict[str, str | None] = {}
        for entry in re.split(r"\n(?= {2,8}(?:-\w, )?--)", helptext):
            name = re.match(r" {2,8}(?:-\w, )?--([a-z0-9-]+)", entry)
            if name:
                default = re.search(r"\[default: ([^\]]*)\]", " ".join(entry.split()))
                self.help_defaults[name.group(1)] = default.group(1) if default else None
        self.help_names = set(self.help_defaults)

    def test_table_lists_every_option(self) -> None:
        self.assertEqual(sorted(_table_options()), sorted(self.help_names))

    def test_table_defaults_are_the_defaults(self) -> None:
        """A default the table gives as a literal (`8080`, `500`) is Options' own."""
        wrong = []
        for name, column in _table_options().items():
            literal = re.fullmatch(r"`([^`]*)`(?: \(.*\))?", column)
            default = self.help_defaults.get(name)
            if literal is None or default is None:
                continue
            said, real = literal.group(1), str(default)
            if said != real and (_number(said) is None or _number(said) != _number(real)):
                wrong.append(f"--{name}: table {said!r}, twistd track {real!r}")
        self.assertEqual(wrong, [])
        self.assertIn("http", _table_options())
