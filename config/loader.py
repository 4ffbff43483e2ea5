"""Load the one frozen settings tree: a TOML file, then ``DVCGW_SECTION__KEY`` environment overrides.

Rules (all failures raise :class:`core.errors.ConfigError` naming the dotted key):

* unknown keys are errors, so a typo never silently falls back to a default;
* every value is checked against the dataclass field's type;
* :data:`Duration` fields take strings such as ``"500ms"``, ``"30s"``, ``"5m"``, ``"2h"``, ``"1d"``;
* any ``foo`` may be given as ``foo_file``: the file's content (stripped) becomes ``foo``; or as
  ``foo_env``: the named environment variable's value (unless ``foo_env`` is a field of its own);
* **secrets come from files or the environment only** (docs/security.md, "Secrets"): a field the
  caller names as secret (``secrets``) that a settings *file* sets inline to anything but ``""``
  is refused, naming the key and never echoing the value; give it as ``foo_file``, ``foo_env`` or
  the ``DVCGW_SECTION__FOO`` override;
* environment values are parsed as TOML values when they parse, else taken as plain strings.

Nothing else in the project reads ``os.environ`` for settings.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

from core.errors import ConfigError

T = TypeVar("T")

ENV_PREFIX = "DVCGW_"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class Duration(float):
    """Seconds, written in settings as ``"30s"``, ``"5m"`` …"""


def parse_duration(value: object, key: str = "duration") -> Duration:
    """Parse ``"30s"``-style text (or a bare number of seconds) into a :class:`Duration`."""
    if isinstance(value, bool):
        raise ConfigError(key, "expected a duration such as \"30s\", got a boolean")
    if isinstance(value, int | float):
        return Duration(float(value))
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return Duration(float(m.group(1)) * _UNITS[m.group(2)])
    raise ConfigError(key, f"expected a duration such as \"30s\", \"5m\", \"2h\"; got {value!r}")


Secrets = Mapping[type, Collection[str]]


def load_settings(cls: type[T], path: str | Path | None, environ: Mapping[str, str] | None = None, *,
                  removed: Mapping[str, str] | None = None, secrets: Secrets | None = None) -> T:
    """Read ``path`` (may be None for pure defaults), apply environment overrides, build ``cls``.
    ``removed`` maps dotted keys that no longer exist to what replaced them: one still set is
    refused with that message. ``secrets`` names, per settings class, the fields that hold
    secrets: the file may not set them inline."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(str(p), "settings file not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(p), f"not valid TOML: {exc}") from exc
        _walk(cls, raw, "", lambda c, table, prefix: _refuse_inline(table, (secrets or {}).get(c, ()), prefix))
    apply_env(raw, env)
    _walk(cls, raw, "", lambda c, table, prefix: _resolve_env(c, table, prefix, env))
    for key, replacement in (removed or {}).items():
        if _is_set(raw, key):
            raise ConfigError(key, replacement)
    return build(cls, raw, "")


Visit = Callable[[type, dict[str, Any], str], None]


def _walk(cls: type, raw: Any, prefix: str, visit: Visit) -> None:
    """Call ``visit(settings class, its table, dotted prefix)`` for every table of ``raw`` that a
    dataclass of the tree describes (nested tables and arrays of tables included); what does not
    fit the tree is left for :func:`build` to refuse."""
    if not isinstance(raw, dict) or not dataclasses.is_dataclass(cls):
        return
    visit(cls, raw, prefix)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            continue
        tp, key = _unoptional(hints[f.name]), _join(prefix, f.name)
        if dataclasses.is_dataclass(tp):
            _walk(tp, raw[f.name], key, visit)  # type: ignore[arg-type]
        elif typing.get_origin(tp) in (tuple, list) and isinstance(raw[f.name], list):
            item = _unoptional(typing.get_args(tp)[0])
            for i, value in enumerate(raw[f.name]):
                _walk(item, value, f"{key}[{i}]", visit)


def _unoptional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


def _refuse_inline(table: Mapping[str, Any], secret_names: Collection[str], prefix: str) -> None:
    for name in secret_names:
        if table.get(name, "") != "":
            raise ConfigError(_join(prefix, name), f"a secret is not written in the settings file: give "
                                                   f"{name}_file = \"/path/to/file\" or {name}_env = \"VARIABLE\", "
                                                   "or set it through the environment (docs/security.md)")


def _resolve_env(cls: type, table: dict[str, Any], prefix: str, environ: Mapping[str, str]) -> None:
    """``foo_env = "NAME"`` → ``foo`` = the variable's value (a field named ``foo_env`` stays itself)."""
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for name in [n for n in table if n.endswith("_env") and n not in fields]:
        target, key = name[: -len("_env")], _join(prefix, name)
        if target not in fields:
            continue
        variable = table.pop(name)
        if not isinstance(variable, str) or not variable:
            raise ConfigError(key, "expected the name of an environment variable")
        if variable not in environ:
            raise ConfigError(key, f"environment variable {variable} is not set")
        table[target] = environ[variable]


def _is_set(raw: Mapping[str, Any], dotted: str) -> bool:
    node: Any = raw
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Overlay ``DVCGW_A__B__C=value`` onto ``raw['a']['b']['c']``."""
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        node = raw
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(".".join(parts), f"environment variable {name} addresses a non-table")
            node = child
        node[parts[-1]] = _env_value(value)


def _env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def build(cls: type[T], raw: Any, prefix: str) -> T:
    """Build dataclass ``cls`` from ``raw`` (a TOML table), checking keys and types."""
    if not isinstance(raw, dict):
        raise ConfigError(prefix or "<root>", f"expected a table, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    raw = _resolve_files(dict(raw), fields, prefix)
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(_join(prefix, unknown[0]), f"unknown key (known: {', '.join(sorted(fields))})")
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        key = _join(prefix, name)
        if name in raw:
            kwargs[name] = _convert(hints[name], raw[name], key)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(key, "required value is missing")
    try:
        return cls(**kwargs)
    except ValueError as exc:  # __post_init__ checks raise ValueError("key: message")
        k, _, msg = str(exc).partition(": ")
        raise ConfigError(_join(prefix, k) if msg else prefix, msg or str(exc)) from exc


def _resolve_files(raw: dict[str, Any], fields: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    for name in [n for n in raw if n.endswith("_file") and n not in fields]:
        target = name[: -len("_file")]
        if target not in fields:
            continue
        key = _join(prefix, name)
        if not isinstance(raw[name], str):
            raise ConfigError(key, "expected a file path")
        try:
            secret = Path(raw.pop(name)).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(key, f"cannot read secret file: {exc.strerror}") from exc
        raw[target] = secret
    return raw


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Duration:
        return parse_duration(value, key)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(args[0], value, key)
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(key, f"must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}")
        return value
    if origin in (dict, Mapping):
        return _table(tp, value, key)
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise ConfigError(key, f"expected a list, got {type(value).__name__}")
        (item_tp, *_) = typing.get_args(tp)
        return tuple(_convert(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)  # type: ignore[arg-type]
    return _scalar(tp, value, key)


def _table(tp: Any, value: Any, key: str) -> dict[str, Any]:
    """A TOML table of string keys, each value converted to the mapping's value type."""
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected a table, got {type(value).__name__}")
    _, value_tp = typing.get_args(tp)
    return {str(k): _convert(value_tp, v, f"{key}.{k}") for k, v in value.items()}


def _scalar(tp: Any, value: Any, key: str) -> Any:
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {value!r}")
        return value
    raise ConfigError(key, f"unsupported setting type {tp!r}")
