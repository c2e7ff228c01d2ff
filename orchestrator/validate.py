"""Validated data: parse untrusted YAML/JSON values into frozen dataclasses, collecting every problem.

A dataclass field's type drives the check (str, int, float, bool, Literal, Optional/Union, tuple[T, ...],
Mapping[K, V], nested dataclasses); ``field(metadata=...)`` adds constraints:

    ge / gt / le / lt     numeric bounds
    min_len               minimum length of a str, tuple or mapping
    pattern               regular expression a str must match in full
    help                  what the key is for; shown in the fix of a problem about it
    internal              the field is set by code, never read from a document

Unknown keys are problems, as are missing required keys and values of the wrong type. Nothing here raises
for bad input: ``parse`` returns ``(value_or_None, problems)`` so callers can report all problems at once.

    >>> @dataclass(frozen=True)
    ... class Limits:
    ...     app_limit_mb: int = field(metadata={"gt": 0})
    >>> parse(Limits, {"app_limit_mb": "2GB"}, file="x.yaml")[1][0].message
    'expected an integer > 0, got "2GB"'
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from orchestrator.errors import Problem
from orchestrator.harness.untrusted import UntrustedFileError, read_regular

T = TypeVar("T")

_MISSING = dataclasses.MISSING


def describe(value: Any) -> str:
    """A short, quoted rendering of a bad value for an error message."""
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return '"' + text + '"'
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "nothing (null)"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _bounds(meta: Mapping[str, Any]) -> str:
    parts = []
    for key, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if key in meta:
            parts.append(f"{sym} {meta[key]}")
    return (" " + " and ".join(parts)) if parts else ""


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if tp is bool:
        return "true or false"
    if tp is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(tp))
    if origin in (tuple, list):
        return "a list"
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


class _Parser:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def problem(self, key: str, message: str, fix: str | None = None) -> None:
        self.problems.append(Problem(self.file, key, message, fix))

    # Each method returns (ok, value); ok=False means a problem was recorded.
    def value(self, tp: Any, data: Any, key: str, meta: Mapping[str, Any]) -> tuple[bool, Any]:
        origin = get_origin(tp)
        if tp is Any:
            return True, data
        if origin in (typing.Union, types.UnionType):
            return self.union(tp, data, key, meta)
        if dataclasses.is_dataclass(tp):
            return self.dataclass(typing.cast(type, tp), data, key)
        if origin is Literal:
            allowed = get_args(tp)
            if isinstance(data, bool) or data not in allowed:
                self.problem(key, f"expected one of {', '.join(map(str, allowed))}, got {describe(data)}",
                             meta.get("help") or f"use one of {', '.join(map(str, allowed))}")
                return False, None
            return True, data
        if origin in (tuple, list):
            return self.sequence(tp, data, key, meta)
        if origin in (dict, Mapping) or tp in (dict, Mapping):
            return self.mapping(tp, data, key, meta)
        return self.scalar(tp, data, key, meta)

    def scalar(self, tp: Any, data: Any, key: str, meta: Mapping[str, Any]) -> tuple[bool, Any]:
        expect = _type_name(tp) + _bounds(meta)
        ok = False
        if tp is bool:
            ok = isinstance(data, bool)
        elif tp is int:
            ok = isinstance(data, int) and not isinstance(data, bool)
        elif tp is float:
            ok = isinstance(data, int | float) and not isinstance(data, bool) and math.isfinite(data)  # no .inf/.nan
            if ok:
                data = float(data)
        elif tp is str:
            ok = isinstance(data, str)
        elif tp is Path:
            ok = isinstance(data, str) and data != ""
            if ok:
                data = Path(data)
        fix = meta.get("help") or f"use {expect}"
        if not ok:
            self.problem(key, f"expected {expect}, got {describe(data)}", fix)
            return False, None
        if isinstance(data, int | float) and not isinstance(data, bool):
            for name, test in (("gt", data.__gt__), ("ge", data.__ge__), ("lt", data.__lt__), ("le", data.__le__)):
                if name in meta and not test(meta[name]):
                    self.problem(key, f"expected {expect}, got {describe(data)}", fix)
                    return False, None
        if isinstance(data, str):
            if len(data) < meta.get("min_len", 0):
                self.problem(key, f"expected a non-empty string, got {describe(data)}", fix)
                return False, None
            pattern = meta.get("pattern")
            if pattern and not re.fullmatch(pattern, data):
                self.problem(key, f"{describe(data)} does not match the pattern {pattern}", fix)
                return False, None
        return True, data

    def union(self, tp: Any, data: Any, key: str, meta: Mapping[str, Any]) -> tuple[bool, Any]:
        members = get_args(tp)
        if data is None and type(None) in members:
            return True, None
        for member in members:
            if member is type(None):
                continue
            trial = _Parser(self.file)
            ok, value = trial.value(member, data, key, meta)
            if ok:
                return True, value
        # Report the single most relevant failure: the member whose container kind matches the data.
        for member in members:
            is_seq = get_origin(member) in (tuple, list)
            is_map = get_origin(member) in (dict, Mapping) or dataclasses.is_dataclass(member)
            if (is_seq and isinstance(data, list)) or (is_map and isinstance(data, Mapping)):
                return self.value(member, data, key, meta)
        names = [_type_name(m) + (_bounds(meta) if m in (int, float) else "") for m in members]
        self.problem(key, f"expected {' or '.join(names)}, got {describe(data)}",
                     meta.get("help") or f"use {' or '.join(names)}")
        return False, None

    def sequence(self, tp: Any, data: Any, key: str, meta: Mapping[str, Any]) -> tuple[bool, Any]:
        args = get_args(tp)
        item_tp = args[0] if args else Any
        if not isinstance(data, list):
            self.problem(key, f"expected a list, got {describe(data)}", meta.get("help") or "write a YAML list: [a, b]")
            return False, None
        if len(data) < meta.get("min_len", 0):
            self.problem(key, f"expected at least {meta['min_len']} item(s), got {len(data)}",
                         meta.get("help") or f"list at least {meta['min_len']} item(s)")
            return False, None
        item_meta = {k: v for k, v in meta.items() if k != "min_len"}
        out, ok = [], True
        for i, item in enumerate(data):
            good, value = self.value(item_tp, item, f"{key}[{i}]", item_meta)
            ok &= good
            out.append(value)
        return ok, tuple(out)

    def mapping(self, tp: Any, data: Any, key: str, meta: Mapping[str, Any]) -> tuple[bool, Any]:
        args = get_args(tp)
        key_tp, val_tp = args if args else (Any, Any)
        if not isinstance(data, Mapping):
            self.problem(key, f"expected a mapping, got {describe(data)}",
                         meta.get("help") or "write a YAML mapping: {key: value}")
            return False, None
        if len(data) < meta.get("min_len", 0):
            self.problem(key, f"expected at least {meta['min_len']} entr(ies), got none",
                         meta.get("help") or f"give at least {meta['min_len']} entr(ies)")
            return False, None
        item_meta = {k: v for k, v in meta.items() if k != "min_len"}
        out, ok = {}, True
        for k, v in data.items():
            sub = f"{key}.{k}" if key else str(k)
            good_k, kk = self.value(key_tp, k, sub + " (key)", {})
            good_v, vv = self.value(val_tp, v, sub, item_meta)
            ok &= good_k and good_v
            if good_k:
                out[kk] = vv
        return ok, out

    def dataclass(self, cls: type, data: Any, key: str) -> tuple[bool, Any]:
        if not isinstance(data, Mapping):
            allowed = ", ".join(f.name for f in dataclasses.fields(cls) if f.init and not f.metadata.get("internal"))
            self.problem(key or "(top level)", f"expected a mapping, got {describe(data)}",
                         f"write a mapping with keys among: {allowed}")
            return False, None
        hints = get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init and not f.metadata.get("internal")}
        ok = True
        for k in data:
            if not isinstance(k, str) or k not in fields:
                allowed = ", ".join(sorted(fields))
                self.problem(f"{key}.{k}" if key else str(k), "unknown key", f"allowed keys here: {allowed}")
                ok = False
        kwargs: dict[str, Any] = {}
        for name, f in fields.items():
            sub = f"{key}.{name}" if key else name
            if name not in data:
                if f.default is _MISSING and f.default_factory is _MISSING:
                    help_ = f.metadata.get("help")
                    self.problem(sub, "missing required key", f"add `{name}:` ({help_})" if help_ else f"add `{name}:`")
                    ok = False
                continue
            good, value = self.value(hints[name], data[name], sub, f.metadata)
            ok &= good
            if good:
                kwargs[name] = value
        if not ok:
            return False, None
        try:
            return True, cls(**kwargs)
        except (ValueError, TypeError) as exc:  # __post_init__ cross-field checks raise ValueError
            where, _, message = str(exc).partition(": ")
            fix = getattr(exc, "fix", None) or "correct the value named in the message"
            if message and re.fullmatch(r"[A-Za-z0-9_.\[\]]+", where):  # "variants.x: ..." names its own key
                self.problem(f"{key}.{where}" if key else where, message, fix)
            else:
                self.problem(key or "(top level)", str(exc), fix)
            return False, None


def field_error(key: str, message: str, fix: str) -> ValueError:
    """What a ``__post_init__`` raises for a cross-field problem: ``parse`` reports it at ``key`` with ``fix``."""
    exc = ValueError(f"{key}: {message}")
    exc.fix = fix  # type: ignore[attr-defined]
    return exc


def parse(cls: type[T], data: Any, *, file: str, key: str = "") -> tuple[T | None, list[Problem]]:
    """Parse ``data`` into ``cls``; return the value (None on any problem) and every problem found."""
    parser = _Parser(file)
    ok, value = parser.dataclass(cls, data, key)
    return (value if ok else None), parser.problems


# libyaml's parser when PyYAML was built with it: 10x faster, which is most of a lookup command's time (the
# catalog is 70+ files). Same safe constructor and the same marks in errors.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """SafeLoader that rejects duplicate mapping keys (PyYAML silently keeps the last one)."""


MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    """Duplicate keys are checked among the keys written in this mapping; keys brought in by a merge (``<<:``)
    may be overridden by them, as YAML's merge rules say."""
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        if key_node.tag == MERGE_TAG:
            continue
        k = loader.construct_object(key_node, deep=deep)
        try:
            hash(k)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "found an unhashable key (a list or mapping used as a key)", key_node.start_mark
            ) from None
        if k in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {k!r}", key_node.start_mark
            )
        seen[k] = True
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def display_path(path: Path | str) -> str:
    """A file name printable on any console: bytes that are not UTF-8 shown as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def load_yaml(path: Path, *, display: str | None = None, max_bytes: int = 4 << 20) -> tuple[Any, list[Problem]]:
    """Read one YAML document; an unreadable, oversized, invalid or empty file is a Problem, never a traceback.

    Only a regular file is read (a FIFO would block forever, ``/dev/zero`` never ends), and at most
    ``max_bytes`` of it."""
    name = display_path(display or path)
    try:
        text = read_regular(path, max_bytes).decode("utf-8")
    except FileNotFoundError:
        return None, [Problem(name, "", "file not found", "check the path")]
    except UntrustedFileError as exc:
        return None, [Problem(name, "", str(exc), "give a regular YAML file (not a folder, pipe or device) "
                                                  f"under {max_bytes >> 20} MB")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(name, "", f"cannot read file: {exc}", "check the file's permissions and that it "
                                                                    "is UTF-8 text")]
    return loads_yaml(text, name)


def loads_yaml(text: str, name: str) -> tuple[Any, list[Problem]]:
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return None, [Problem(name, "", f"invalid YAML: {where}{exc.problem or exc}", "fix the YAML syntax")]
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        return None, [Problem(name, "", f"invalid YAML: {exc}", "fix the YAML syntax")]
    if data is None:
        return None, [Problem(name, "", "file is empty", "fill it in; see examples/ or device_profiles/")]
    return data, []
