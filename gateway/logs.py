"""Logging set-up: one record per line on stderr, as ``key=value`` text or JSON lines.

Every record from every logger (ours, aiohttp's, aiokafka's …) reaches the one root handler and
passes its one filter, :class:`LogGuard`, then one of the two formatters:

* **Nothing from a request's bytes.** aiohttp's protocol errors carry the raw bytes of the broken
  request in the exception's message (a key in a malformed header, a whole body after
  ``Connection: close``): the guard rewrites such a record to the error class, the peer, the
  route (``-``: no request line was parsed) and a request id, without the exception. A formatted
  exception shows its traceback frames and its class; its message only for classes whose
  messages the gateway writes itself (:data:`MESSAGE_SAFE`), since e.g. a ``ValueError`` may quote
  the input that caused it.
* **No forged lines.** The formatters escape every value (message, arguments, extra fields,
  exception messages): newlines, other control characters, U+2028/U+2029 and backslashes become
  ``\\n``-style escapes, so no request-derived value can start a line of its own.
* **No floods.** An identical warning or error, or a protocol error or disconnect from the same
  peer, is written once per ``[log] repeat_interval``; the next line written for it carries
  ``repeated=N`` (N occurrences not written), and :func:`flush_repeats` writes what is still
  counted at shutdown. "Identical" ignores numbers and hex addresses (a task number, a port, a
  partition, a node id), so a library's retry loop counts as one line however its text varies.
* **Request ids.** :data:`REQUEST_ID` is set per request (:mod:`gateway.requestlog`); every
  record logged while it is set carries it as ``request_id``.

Personal data never reaches a log line: the code logs classes, counts and codes, never dossier
contents, owner names or ID numbers (checked by tests that scan captured logs).
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import os
import re
import secrets
import sqlite3
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Hashable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import IO, Any

import orjson
from aiohttp.http_exceptions import HttpProcessingError

from config.schema import LogSettings
from core.errors import TransientError, TransitionRefused

#: The id of the request being handled in this task (None outside a request).
REQUEST_ID: ContextVar[str | None] = ContextVar("dvcgw_request_id", default=None)

#: Exception classes whose messages are written by the gateway or the OS, never quoting input.
MESSAGE_SAFE: tuple[type[BaseException], ...] = (TransientError, TransitionRefused, OSError, TimeoutError,
                                                 sqlite3.Error)

# aiohttp's RequestHandler.handle_error: "Error handling request from %s", the peer as argument
_AIOHTTP_ERROR = "Error handling request from %s"
_MAX_KEYS = 4096  # rate-limit keys kept (oldest forgotten first)
_MAX_KEY_TEXT = 512
# what may differ between two lines that count as repeats of one another: numbers and hex addresses
_VARYING = re.compile(r"0x[0-9a-fA-F]+|\d+")

_ESCAPES: dict[int, str] = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", ord("\\"): "\\\\",
                 0x2028: "\\u2028", 0x2029: "\\u2029"})

# attributes every LogRecord has; anything else on a record was passed as ``extra``
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", "request_id"}


def escape(text: str) -> str:
    """``text`` with control characters, line separators and backslashes escaped: one line, always."""
    return text.translate(_ESCAPES)


def new_request_id() -> str:
    return secrets.token_hex(8)


# ---------------------------------------------------------------------------- the filter


@dataclass
class _Seen:
    since: float
    suppressed: int = 0
    last: logging.LogRecord | None = None


class LogGuard(logging.Filter):
    """The one filter on the root handler: request id, protocol-error scrubbing, repeat limiting."""

    def __init__(self, repeat_interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._interval = repeat_interval
        self._clock = clock
        self._lock = threading.Lock()  # records may come from threads (SQLite commits, executors)
        self._seen: OrderedDict[Hashable, _Seen] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_dvcgw_flushed", False):
            return True
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        _scrub_protocol_error(record)
        key = _repeat_key(record)
        return key is None or self._interval <= 0 or self._admit(key, record)

    def _admit(self, key: Hashable, record: logging.LogRecord) -> bool:
        now = self._clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen.since < self._interval:
                seen.suppressed += 1
                seen.last = record
                return False
            if seen is not None and seen.suppressed:
                record.repeated = seen.suppressed
            self._seen[key] = _Seen(since=now)
            self._seen.move_to_end(key)
            while len(self._seen) > _MAX_KEYS:
                self._seen.popitem(last=False)
        return True

    def take_pending(self) -> list[logging.LogRecord]:
        """The last record of each key with occurrences not yet written, marked ``repeated``
        (how many others were not written); the counts are reset."""
        out: list[logging.LogRecord] = []
        with self._lock:
            for seen in self._seen.values():
                if seen.suppressed and seen.last is not None:
                    record = copy.copy(seen.last)
                    if seen.suppressed > 1:
                        record.repeated = seen.suppressed - 1
                    record._dvcgw_flushed = True
                    out.append(record)
                    seen.suppressed, seen.last = 0, None
        return out


def _protocol_error(exc: BaseException | None) -> HttpProcessingError | None:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, HttpProcessingError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _scrub_protocol_error(record: logging.LogRecord) -> None:
    """A record about a malformed request keeps the class, the peer and a request id, nothing else."""
    exc = _protocol_error(record.exc_info[1] if record.exc_info else None)
    if exc is None:
        return
    args = record.args if isinstance(record.args, tuple) else ()
    peer = str(args[0]) if record.msg == _AIOHTTP_ERROR and args else "-"
    record.msg = "malformed request from %s: %s; answered 400 and closed the connection"
    record.args = (peer, type(exc).__name__)
    record.exc_info, record.exc_text, record.stack_info = None, None, None
    if record.levelno > logging.WARNING:  # a client's mistake, not the gateway's
        record.levelno, record.levelname = logging.WARNING, "WARNING"
    record.peer, record.route = peer, "-"
    record._dvcgw_repeat = ("peer", peer)
    if getattr(record, "request_id", None) is None:
        record.request_id = new_request_id()


def _repeat_key(record: logging.LogRecord) -> Hashable | None:
    key: Hashable | None = getattr(record, "_dvcgw_repeat", None)
    if key is not None:
        return key
    if record.levelno < logging.WARNING:
        return None
    try:
        text = record.getMessage()
    except Exception:  # a broken call site: key on the template
        text = str(record.msg)
    exc = record.exc_info[1] if record.exc_info else None
    return record.name, record.levelno, _VARYING.sub("#", text[:_MAX_KEY_TEXT]), type(exc).__name__ if exc else None


# ---------------------------------------------------------------------------- formatters


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a call site with wrong arguments still leaves a trace, escaped
        return f"{record.msg!s} (arguments did not fit: {record.args!r})"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items()
            if k not in _STANDARD and not k.startswith("_") and v is not None}


def exception_text(exc: BaseException) -> str:
    """Traceback frames and class of ``exc`` and its causes; a message only for :data:`MESSAGE_SAFE`."""
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    parts: list[str] = []
    for e in reversed(chain):
        if parts:
            parts.append("which led to:")
        parts.append("Traceback (most recent call last):")
        parts.extend(line.rstrip("\n") for line in traceback.format_tb(e.__traceback__))
        cls = f"{type(e).__module__}.{type(e).__qualname__}".removeprefix("builtins.")
        text = str(e)
        if not text:
            parts.append(cls)
        elif isinstance(e, MESSAGE_SAFE):
            parts.append(f"{cls}: {escape(text)}")
        else:
            parts.append(f"{cls} (message not logged: it may quote input; {len(text)} characters)")
    return "\n".join(parts)


def _exc(record: logging.LogRecord) -> str | None:
    if record.exc_info and record.exc_info[1] is not None:
        return exception_text(record.exc_info[1])
    return None


def _field(value: Any) -> str:
    text = escape(str(value))
    if not text or any(c in text for c in ' "='):
        return '"' + text.replace('"', '\\"') + '"'
    return text


class TextFormatter(logging.Formatter):
    """``<time> level=… logger=… [request_id=…] <message> [key=value …]``; a traceback follows on
    indented lines. Every value is escaped."""

    def __init__(self) -> None:
        super().__init__()

    def format(self, record: logging.LogRecord) -> str:
        head = f"{self.formatTime(record)} level={record.levelname} logger={escape(record.name)}"
        rid = getattr(record, "request_id", None)
        if rid is not None:
            head += f" request_id={_field(rid)}"
        line = f"{head} {escape(_message(record))}"
        fields = _extras(record)
        if fields:
            line += " " + " ".join(f"{escape(k)}={_field(v)}" for k, v in fields.items())
        exc = _exc(record)
        if exc:
            line += "\n" + "\n".join("  " + part for part in exc.split("\n"))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (ISO 8601 UTC), ``level``, ``logger``, ``message``,
    ``request_id``, the record's extra fields, and ``exc`` for an exception. Every string value is
    escaped as in the text format, so a decoded message cannot span lines either."""

    def format(self, record: logging.LogRecord) -> str:
        ts = dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")
        doc: dict[str, Any] = {"ts": ts, "level": record.levelname, "logger": escape(record.name),
                               "message": escape(_message(record)),
                               "request_id": getattr(record, "request_id", None)}
        for k, v in _extras(record).items():
            doc.setdefault(escape(k), v if isinstance(v, int | float | bool) else escape(str(v)))
        exc = _exc(record)
        if exc:
            doc["exc"] = exc
        return orjson.dumps(doc).decode()


# ---------------------------------------------------------------------------- set-up


_guard: LogGuard | None = None
_handler: logging.Handler | None = None


def make_handler(settings: LogSettings, stream: IO[str] | None = None) -> logging.Handler:
    """A stream handler with the guard and the configured format (also used by tests)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    handler.addFilter(LogGuard(float(settings.repeat_interval)))
    return handler


def setup_logging(settings: LogSettings | None = None, level: str | None = None) -> None:
    """Route every logger through one guarded handler on the root logger."""
    global _guard, _handler
    lvl = (level or os.environ.get("DVCGW_LOG_LEVEL") or "INFO").upper()
    handler = make_handler(settings or LogSettings())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(lvl)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # raw paths: gateway.requestlog logs
    _handler = handler
    _guard = next(f for f in handler.filters if isinstance(f, LogGuard))


def flush_repeats() -> None:
    """Write, once, the occurrences the guard is still holding back (called at shutdown)."""
    if _guard is None or _handler is None:
        return
    for record in _guard.take_pending():
        _handler.handle(record)
