"""Copy-on-write mutations of JSON documents, for the fuzz tests (tests/test_fuzz.py).

A mutation never touches the document it is applied to: only the containers on
the path to the change are copied, so a 600 kB manifest can be mutated hundreds
of times without a deep copy. ``dumps`` writes what ``json.dumps`` cannot build
in memory without overflowing the stack: a :class:`DeepNesting` value becomes
``depth`` nested lists in the text.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

JsonPath = tuple[str | int, ...]
"""Keys and indexes from the document's root to one value."""

_DEEP_TOKEN = "\x00deep-nesting:{depth}\x00"
_DEEP_PATTERN = re.compile(r'"\\u0000deep-nesting:(\d+)\\u0000"')


@dataclass(frozen=True)
class DeepNesting:
    """A value that ``dumps`` writes as ``depth`` nested empty lists: ``[[[...]]]``."""

    depth: int

    def token(self) -> str:
        return _DEEP_TOKEN.format(depth=self.depth)


def json_paths(document: Any, *, max_depth: int = 64) -> list[JsonPath]:
    """Every path to a value inside ``document`` (not the root itself), parents first."""
    return list(_walk(document, (), max_depth))


def _walk(value: Any, path: JsonPath, max_depth: int) -> Iterator[JsonPath]:
    if len(path) >= max_depth:
        return
    children: list[tuple[str | int, Any]]
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    else:
        return
    for key, child in children:
        yield (*path, key)
        yield from _walk(child, (*path, key), max_depth)


def get_in(document: Any, path: JsonPath) -> tuple[bool, Any]:
    """The value at ``path``: ``(True, value)``, or ``(False, None)`` if the path does not exist."""
    value = document
    for key in path:
        if (isinstance(value, dict) and isinstance(key, str) and key in value) or (
            isinstance(value, list) and isinstance(key, int) and 0 <= key < len(value)
        ):
            value = value[key]
        else:
            return False, None
    return True, value


def update_in(document: Any, path: JsonPath, change: Any) -> Any:
    """A copy of ``document`` whose container at ``path[:-1]`` is replaced by ``change(copy, path[-1])``.

    ``change`` receives a shallow copy of the parent container and the last key; it
    mutates the copy in place. The last key of a dict need not exist yet (``replace``
    adds it). If the path no longer exists (an earlier mutation removed it), the
    document is returned unchanged.
    """
    if not path:
        return document
    head, rest = path[0], path[1:]
    if isinstance(document, dict) and isinstance(head, str) and (head in document or not rest):
        copy: Any = dict(document)
    elif isinstance(document, list) and isinstance(head, int) and 0 <= head < len(document):
        copy = list(document)
    else:
        return document
    if rest:
        copy[head] = update_in(document[head], rest, change)
    else:
        change(copy, head)
    return copy


def replace(document: Any, path: JsonPath, value: Any) -> Any:
    """A copy of ``document`` with the value at ``path`` replaced (or, in a dict, added)."""

    def change(parent: Any, key: str | int) -> None:
        parent[key] = value

    return update_in(document, path, change)


def delete(document: Any, path: JsonPath) -> Any:
    """A copy of ``document`` without the key (or list item) at ``path``."""

    def change(parent: Any, key: str | int) -> None:
        if isinstance(parent, dict):
            parent.pop(key, None)
        else:
            del parent[key]

    return update_in(document, path, change)


def duplicate(document: Any, path: JsonPath) -> Any:
    """A copy of ``document`` in which the list item at ``path`` appears twice in a row."""

    def change(parent: Any, key: str | int) -> None:
        if isinstance(parent, list) and isinstance(key, int):
            parent.insert(key, parent[key])

    return update_in(document, path, change)


def shuffle(document: Any, path: JsonPath, seed: int) -> Any:
    """A copy of ``document`` with the list at ``path`` in a (seeded) random order."""

    def change(parent: Any, key: str | int) -> None:
        if isinstance(parent.get(key) if isinstance(parent, dict) else parent[key], list):
            items = list(parent[key])
            random.Random(seed).shuffle(items)
            parent[key] = items

    return update_in(document, path, change)


def dumps(document: Any) -> bytes:
    """Serialise like dbt does, NaN and Infinity allowed, expanding every :class:`DeepNesting`."""
    text = json.dumps(document, allow_nan=True, default=_encode_special)
    return _DEEP_PATTERN.sub(lambda m: "[" * int(m.group(1)) + "]" * int(m.group(1)), text).encode()


def _encode_special(value: Any) -> Any:
    if isinstance(value, DeepNesting):
        return value.token()
    raise TypeError(f"not JSON serialisable: {value!r}")


@dataclass(frozen=True)
class Mutation:
    """One change to a document, printable so a failing example shows what was done."""

    kind: str
    """``replace``, ``delete``, ``duplicate`` or ``shuffle``."""
    path: JsonPath
    value: Any = None
    """The new value (``replace``) or the shuffle's seed (``shuffle``)."""

    def apply(self, document: Any) -> Any:
        if self.kind == "replace":
            return replace(document, self.path, self.value)
        if self.kind == "delete":
            return delete(document, self.path)
        if self.kind == "duplicate":
            return duplicate(document, self.path)
        if self.kind == "shuffle":
            return shuffle(document, self.path, int(self.value))
        raise ValueError(f"unknown mutation kind {self.kind!r}")


def apply_all(document: Any, mutations: list[Mutation]) -> Any:
    """``document`` with every mutation applied in order (the original is left untouched)."""
    for mutation in mutations:
        document = mutation.apply(document)
    return document
