"""Checking plain YAML/JSON values against Python type hints, and saying in words what was expected: the generic
part of the recipe validation (:mod:`lsr_hf.recipe` builds its dataclasses with it and formats the errors).

``fits(value, hint)`` tells whether a value read from YAML fits a type hint (``X | None``, ``Literal``, enums, paths,
tuples, lists, mappings, dataclasses left to the caller) and gives the value to use (a list becomes a tuple where a
tuple is expected; ``1e-3`` written without a dot, which YAML reads as a string, becomes a float); ``describe``,
``kind`` and ``shown`` put a hint, a value's kind and a value into the words of an error message.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

# PyYAML follows YAML 1.1, which reads 1e-3 (no dot) as a string; such a string is accepted for a float field
_UNDOTTED_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def fits(value: Any, hint: Any) -> tuple[bool, Any]:
    """Whether a YAML value fits a type hint, and the value to use. Unknown hints accept anything."""
    if hint is Any or hint is object or isinstance(hint, (str, typing.ForwardRef, typing.TypeVar)):
        return True, value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        for arg in args:
            ok, converted = fits(value, arg)
            if ok:
                return True, converted
        return False, value
    if origin is typing.Literal:
        return any(type(value) is type(a) and value == a for a in args), value
    if hint is type(None):
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        if isinstance(value, str) and _UNDOTTED_FLOAT.fullmatch(value.strip()):
            return True, float(value)
        return isinstance(value, (int, float)) and not isinstance(value, bool), value
    if hint is str:
        return isinstance(value, str), value
    container = origin or hint
    if not isinstance(container, type):
        return True, value
    if issubclass(container, PurePath):
        return isinstance(value, (str, PurePath)), container(value) if isinstance(value, (str, PurePath)) else value
    if issubclass(container, enum.Enum):
        values = [m.value for m in container]
        return isinstance(value, container) or any(type(value) is type(v) and value == v for v in values), value
    if issubclass(container, tuple):
        if not isinstance(value, (list, tuple)):
            return False, value
        item_hints = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        if args and len(item_hints) != len(value):
            return False, value
        checked = [fits(v, h) for v, h in zip(value, item_hints)] if args else [(True, v) for v in value]
        return all(ok for ok, _ in checked), tuple(v for _, v in checked)
    if issubclass(container, Mapping):
        if not isinstance(value, dict):
            return False, value
        if len(args) != 2:
            return True, value
        checked_items = {k: fits(v, args[1]) for k, v in value.items()}
        return all(ok for ok, _ in checked_items.values()), {k: v for k, (_, v) in checked_items.items()}
    if issubclass(container, (list, Sequence)) and not issubclass(container, (str, bytes)):
        if not isinstance(value, list):
            return False, value
        if not args:
            return True, value
        checked = [fits(v, args[0]) for v in value]
        return all(ok for ok, _ in checked), [v for _, v in checked]
    return isinstance(value, container), value


def describe(hint: Any) -> str:
    """A type hint in words, for error messages."""
    if hint is Any:
        return "anything"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        words: list[str] = []
        for arg in args:
            if describe(arg) not in words:
                words.append(describe(arg))
        return " or ".join(words)
    if origin is typing.Literal:
        return "one of " + ", ".join(shown(a) for a in args)
    simple = {type(None): "null", bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if hint in simple:
        return simple[hint]
    container = origin or hint
    if isinstance(container, type):
        if issubclass(container, PurePath):
            return "a path"
        if issubclass(container, enum.Enum):
            return "one of " + ", ".join(shown(m.value) for m in container)
        if issubclass(container, Mapping):
            if len(args) == 2 and args[1] is not Any:
                return f"a mapping whose values are each {describe(args[1])}"
            return "a mapping"
        if issubclass(container, tuple) and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} items ({', '.join(describe(a) for a in args)})"
        if issubclass(container, (list, tuple, Sequence)):
            if args and args[0] is not Any:
                return f"a list whose items are each {describe(args[0])}"
            return "a list"
        return f"a {container.__name__}"
    return str(hint)


def kind(value: Any) -> str:
    """What a YAML value is, in words."""
    if value is None:
        return "null"
    kinds = {
        bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a mapping"
    }
    return kinds.get(type(value), f"a {type(value).__name__}")


def shown(value: Any) -> str:
    """A value as the user wrote it in YAML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return repr(value)


def as_written(message: str, value: Any) -> str:
    """Shows an int the user wrote as an int: dataclasses that convert to float report ``-1.0`` for ``-1``."""
    if type(value) is int:
        converted = repr(float(value))
        if message.endswith(converted):
            return message[: -len(converted)] + repr(value)
    return message


def suggest(name: str, choices: Sequence[str] | Mapping[str, Any], prefix: str = "") -> str:
    matches = difflib.get_close_matches(name, list(choices), n=3)
    if not matches:
        return ""
    return " (did you mean " + " or ".join(f"{prefix}.{m}" if prefix else m for m in matches) + "?)"


def type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError, AttributeError):  # an annotation that cannot be resolved: check what we can
        return {f.name: f.type for f in dataclasses.fields(cls) if not isinstance(f.type, str)}


def dataclass_in(hint: Any) -> type | None:
    """The dataclass named by ``hint`` (directly or as ``X | None``), if any."""
    candidates = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    found = [c for c in candidates if isinstance(c, type) and dataclasses.is_dataclass(c)]
    return found[0] if len(found) == 1 else None


def plain(value: Any) -> Any:
    """Plain YAML/JSON data: mappings with string keys, lists, scalars (paths and enums as their values)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return plain(value.value)
    return value
