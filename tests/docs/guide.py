"""Executable examples in a Markdown guide: find them, run them with the real ``curl``, compare.

The convention (docs/agency-guide.md, "How to read the examples", says the same for readers):

* A fenced ```` ```sh env ```` block defines the variables every example uses (``GW=…`` lines).
  The test gives each of them a live value; a variable the test does not know fails it.
* An **example** is a fenced ```` ```sh ```` block with a ``curl`` command, followed (only blank
  lines between) by a fenced ```` ```http ```` block: the documented answer. Its first line is the
  status line (``HTTP/1.1 202 Accepted``; the code is compared, the reason is not), then any
  headers to check (``Name: value``), then a blank line and the JSON body, if one is shown.
  An example whose ``sh`` block has the line ``# a moment later`` shows an answer that comes once
  the gateway has done its work in the background (a delivery, a callback): it is repeated until it
  matches or a deadline passes.
* Every ``sh`` block that calls ``curl`` must be an example (or carry the ``norun`` word in its
  info string), so no curl line in the guide goes unchecked by accident.

Matching the body: every key shown must be there with a matching value (keys not shown are not
checked); a list must have the elements shown, in order, and no more, unless its last element
is ``"…"``; ``"<anything>"`` matches any value; ``"<$NAME>"`` matches any value that is not null
and keeps it as the shell variable ``NAME`` for the examples after it; a string ending in ``…``
matches any string that starts with the rest; ``$NAME`` inside an expected string stands for that
variable's value. Headers match by name (any case) with the same rules for their value.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ELLIPSIS = "…"
EVENTUALLY = "# a moment later"  # the line that marks an example whose answer comes a moment later
_FENCE = re.compile(r"^```(?P<info>[^`\n]*)\n(?P<body>.*?)^```\s*$", re.S | re.M)
_PLACEHOLDER = re.compile(r"^<(\$(?P<capture>[A-Z_][A-Z0-9_]*)|[^<>$]*)>$")
_VAR = re.compile(r"\$(\w+)|\$\{(\w+)\}")
_STATUS = re.compile(r"^HTTP/[\d.]+ (\d{3})")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any | None  # None: not shown, not checked
    eventually: bool = False


@dataclass
class Example:
    line: int  # 1-based line of the sh block in the guide
    script: str
    answer: Answer

    def title(self) -> str:
        first = next((ln for ln in self.script.splitlines() if ln.strip() and not ln.startswith("#")), "")
        return f"line {self.line}: {first.strip()[:90]}"


@dataclass
class Guide:
    variables: list[str]
    examples: list[Example]
    unchecked_curls: list[int] = field(default_factory=list)  # lines of sh blocks with curl and no answer


def parse_answer(text: str, eventually: bool = False) -> Answer:
    lines = text.splitlines()
    m = _STATUS.match(lines[0] if lines else "")
    if not m:
        raise ValueError(f"an answer block starts with a status line (HTTP/1.1 200 OK), not {lines[:1]}")
    headers: dict[str, str] = {}
    i = 1
    while i < len(lines) and lines[i].strip():
        name, sep, value = lines[i].partition(":")
        if not sep:
            raise ValueError(f"not a header line: {lines[i]!r}")
        headers[name.strip().lower()] = value.strip()
        i += 1
    rest = "\n".join(lines[i:]).strip()
    return Answer(int(m.group(1)), headers, json.loads(rest) if rest else None, eventually)


def parse_guide(markdown: str) -> Guide:
    blocks = []
    for m in _FENCE.finditer(markdown):
        line = markdown.count("\n", 0, m.start()) + 1
        blocks.append((line, m.group("info").split(), m.group("body"), m.start(), m.end()))
    variables: list[str] = []
    examples: list[Example] = []
    unchecked: list[int] = []
    for i, (line, info, body, _, end) in enumerate(blocks):
        words = info[1:]
        if info[:1] != ["sh"]:
            continue
        if "env" in words:
            variables += [ln.split("=", 1)[0].strip() for ln in body.splitlines()
                          if re.match(r"^\s*[A-Z_][A-Z0-9_]*=", ln)]
            continue
        if not re.search(r"(^|\s)curl\s", body) or "norun" in words:
            continue
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        if nxt is None or nxt[1][:1] != ["http"] or markdown[end:nxt[3]].strip():
            unchecked.append(line)
            continue
        eventually = any(ln.strip().lower() == EVENTUALLY for ln in body.splitlines())
        examples.append(Example(line, body, parse_answer(nxt[2], eventually=eventually)))
    return Guide(variables, examples, unchecked)


# ---------------------------------------------------------------- matching


def expand(text: str, variables: dict[str, str]) -> str:
    return _VAR.sub(lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), text)


def match(expected: Any, actual: Any, variables: dict[str, str], captured: dict[str, str],
          path: str = "body") -> list[str]:
    """The differences between a documented value and the real one (empty: they match). The values
    ``"<$NAME>"`` placeholders stand for go into ``captured``."""
    if isinstance(expected, str):
        return _match_str(expected, actual, variables, captured, path)
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {actual!r}"]
        problems: list[str] = []
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{path}.{key}: missing")
            else:
                problems += match(value, actual[key], variables, captured, f"{path}.{key}")
        return problems
    if isinstance(expected, list):
        return _match_list(expected, actual, variables, captured, path)
    if actual == expected and type(actual) is type(expected):  # 1 is not true, nor "1"
        return []
    return [f"{path}: expected {expected!r}, got {actual!r}"]


def _match_str(expected: str, actual: Any, variables: dict[str, str], captured: dict[str, str],
               path: str) -> list[str]:
    ph = _PLACEHOLDER.match(expected)
    if ph:
        name = ph.group("capture")
        if name:
            if actual is None:
                return [f"{path}: expected a value for ${name}, got null"]
            captured[name] = actual if isinstance(actual, str) else json.dumps(actual)
        return []
    want = expand(expected, {**variables, **captured})  # a value captured earlier in this answer too
    if want.endswith(ELLIPSIS) and want != ELLIPSIS:
        if isinstance(actual, str) and actual.startswith(want[:-1]):
            return []
        return [f"{path}: expected a string starting {want[:-1]!r}, got {actual!r}"]
    return [] if actual == want else [f"{path}: expected {want!r}, got {actual!r}"]


def _match_list(expected: list[Any], actual: Any, variables: dict[str, str], captured: dict[str, str],
                path: str) -> list[str]:
    if not isinstance(actual, list):
        return [f"{path}: expected a list, got {actual!r}"]
    open_end = bool(expected) and expected[-1] == ELLIPSIS
    shown = expected[:-1] if open_end else expected
    if len(actual) < len(shown) or (not open_end and len(actual) != len(shown)):
        return [f"{path}: expected {len(shown)}{' or more' if open_end else ''} elements, got {len(actual)}"]
    problems: list[str] = []
    for i, value in enumerate(shown):
        problems += match(value, actual[i], variables, captured, f"{path}[{i}]")
    return problems


@dataclass
class Outcome:
    status: int
    headers: dict[str, str]
    stdout: str
    stderr: str


def run_curl(script: str, variables: dict[str, str], cwd: Path, env: dict[str, str],
             timeout: float = 30) -> Outcome:
    """Runs one example's shell block with bash and the real curl; the headers of its (last)
    answer come from curl's own ``-D`` dump."""
    with tempfile.NamedTemporaryFile("r", suffix=".headers", dir=cwd) as dump:
        prelude = f'set -euo pipefail\ncurl() {{ command curl -D {dump.name} "$@"; }}\n'
        proc = subprocess.run(["bash", "-c", prelude + script], cwd=cwd, env={**env, **variables},
                              capture_output=True, text=True, timeout=timeout)
        raw = Path(dump.name).read_text(encoding="latin-1")
    if proc.returncode != 0:
        raise AssertionError(f"the example failed (exit {proc.returncode}): {proc.stderr.strip()[:2000]}")
    # the last answer's status line and headers (a 100 Continue may come first)
    blocks = [b for b in re.split(r"\r?\n\r?\n", raw) if _STATUS.match(b)]
    if not blocks:
        raise AssertionError(f"curl dumped no answer headers: {raw[:500]!r}")
    head = blocks[-1].splitlines()
    status = int(_STATUS.match(head[0]).group(1))  # type: ignore[union-attr]
    headers = {}
    for ln in head[1:]:
        name, _, value = ln.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Outcome(status, headers, proc.stdout, proc.stderr)


def compare(answer: Answer, outcome: Outcome, variables: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """(problems, captured variables) of one run."""
    captured: dict[str, str] = {}
    problems = []
    if outcome.status != answer.status:
        problems.append(f"status: expected {answer.status}, got {outcome.status}")
    if answer.body is not None:  # before the headers: a header may show a value the body gave (Location)
        try:
            body = json.loads(outcome.stdout)
        except json.JSONDecodeError:
            problems.append(f"body: not JSON: {outcome.stdout[:300]!r}")
        else:
            problems += match(answer.body, body, variables, captured)
    for name, value in answer.headers.items():
        if name not in outcome.headers:
            problems.append(f"header {name}: missing")
        else:
            problems += match(value, outcome.headers[name], variables, captured, f"header {name}")
    return problems, captured


def run_example(example: Example, variables: dict[str, str], cwd: Path, env: dict[str, str],
                deadline_s: float = 20.0) -> dict[str, str]:
    """Runs one example (again and again until it matches, for an ``eventually`` answer); raises
    AssertionError naming every difference; returns the variables it captured."""
    end = time.monotonic() + deadline_s
    while True:
        outcome = run_curl(example.script, variables, cwd, env)
        problems, captured = compare(example.answer, outcome, variables)
        if not problems:
            return captured
        if not example.answer.eventually or time.monotonic() > end:
            raise AssertionError(f"{example.title()}: the answer differs from the guide:\n  "
                                 + "\n  ".join(problems)
                                 + f"\nthe real answer: {outcome.status} {outcome.stdout[:3000]}")
        time.sleep(0.1)
