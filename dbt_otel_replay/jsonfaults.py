"""Why bytes that should be a dbt artifact are not JSON: the diagnosis behind one error message.

msgspec refuses bad JSON, but which exception it raises and how it words it change
between its releases (0.18 raised UnicodeDecodeError for invalid UTF-8, 0.23 a
DecodeError). :func:`diagnose` says what is wrong from the bytes themselves: not
UTF-8, cut short (dbt killed while writing), or faulty at a line and column that
Python's own json parser finds. It runs only on a file already refused, so its
speed does not matter.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any

_JSON_WHITESPACE = " \t\r\n"
_ESCAPE = re.compile(r"\\.", re.DOTALL)
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_BARE_TOKEN_END = frozenset(_JSON_WHITESPACE + '{}[],:"')
_LONGEST_CUT_TOKEN = 1024
_UTF8_CHUNK = 1 << 20
_LITERALS = ("true", "false", "null")
_NUMBER_CUT_SHORT = re.compile(r"-|-?(?:0|[1-9][0-9]*)(?:\.|[eE][+-]?|\.[0-9]+[eE][+-]?)")
_SURROGATE = re.compile("[\ud800-\udfff]")
_HIGH_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}")


class _NonFinite(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity``: Python's json reads them, but JSON has no such numbers."""


class _LoneSurrogate(ValueError):
    """A string escapes half of a UTF-16 surrogate pair: Python's json reads it, msgspec does not."""


def diagnose(exc: BaseException, raw: bytes) -> str:
    """Say why msgspec could not decode ``raw``, from the bytes themselves.

    In order: are they UTF-8 (a character cut in two at the very end is a cut, not bad text),
    where does Python's json parser stop, and is that stop only the text ending too soon (dbt
    killed while writing)? Python's parser only ever sees a file already refused, so its speed
    does not matter, and its objects are dropped as soon as they are built. Wording from msgspec
    is only ever shown, in the one case Python's json reads what msgspec refused.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        text = decoder.decode(raw, final=False)
    except UnicodeDecodeError:
        return "is not JSON text (not UTF-8)"
    character_cut = bool(decoder.getstate()[0])
    end = len(text.rstrip(_JSON_WHITESPACE))
    try:
        _scan(text)
    except _NonFinite as constant:
        return f"is not valid JSON: {constant} is not a JSON number"
    except _LoneSurrogate:
        return "is not valid JSON: a string holds half of a UTF-16 surrogate pair (\\ud800 to \\udfff)"
    except RecursionError:
        return "is not a dbt artifact (JSON nested too deeply)"
    except json.JSONDecodeError as error:
        if error.pos >= end or _cut_short(text[:end]):
            line, column = _line_column(text, end)
            return (
                f"is not valid JSON at line {line}, column {column} "
                "(it ends early: was dbt interrupted while writing it?)"
            )
        reason = error.msg.removesuffix(" at")  # "Invalid control character at": the place comes first
        return f"is not valid JSON at line {error.lineno}, column {error.colno}: {reason}"
    if character_cut:
        return "is not JSON text (not UTF-8)"  # a stray byte after the document
    if isinstance(exc, RecursionError):
        return "is not a dbt artifact (JSON nested too deeply)"  # msgspec's depth limit is not Python's
    return f"is not valid JSON ({one_line(str(exc))})"  # what msgspec refuses and Python's json reads


def is_utf8(raw: bytes) -> bool:
    """Whether ``raw`` is UTF-8, but for a character cut short at the very end; checked in chunks."""
    decoder, view = codecs.getincrementaldecoder("utf-8")(), memoryview(raw)
    try:
        for start in range(0, len(raw), _UTF8_CHUNK):
            decoder.decode(view[start : start + _UTF8_CHUNK])
    except UnicodeDecodeError:
        return False
    return True


def _scan(text: str) -> None:
    """Parse ``text`` with Python's json to find its first fault; nothing is kept.

    Raises:
        json.JSONDecodeError: Where the text stops being JSON.
        _NonFinite: At a NaN or Infinity.
        _LoneSurrogate: When a string holds a lone surrogate.
        RecursionError: When it is nested too deeply.
    """
    result = json.loads(
        text,
        object_pairs_hook=_check_pairs,
        parse_constant=_refuse_constant,
        parse_int=_ignore,  # nor do huge integers hit Python's limit on digits
        parse_float=_ignore,
    )
    _check_strings(result)


def _refuse_constant(name: str) -> Any:
    raise _NonFinite(name)


def _ignore(_: str) -> None:
    return None


def _check_pairs(pairs: list[tuple[str, Any]]) -> None:
    """Check an object's strings, then drop it: a truncated 500 MB manifest is never all in memory."""
    for key, value in pairs:
        _check_strings(key)
        _check_strings(value)


def _check_strings(value: Any) -> None:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise _LoneSurrogate
        elif isinstance(item, list):
            pending.extend(item)


def _cut_short(body: str) -> bool:
    """Whether ``body`` is JSON but for its last token, cut short (a string, number or literal).

    Decided by completing that token and parsing again: the text is only cut short when the
    parser, given the completed token, fails no earlier than its end (it wants more).
    """
    completed = _complete_last_token(body)
    if completed is None:
        return False
    try:
        _scan(completed)
    except json.JSONDecodeError as error:
        return error.pos >= len(completed)
    except (ValueError, RecursionError):
        return False
    return True


def _complete_last_token(body: str) -> str | None:
    """``body`` with its last token completed, or None when that token is not a cut-short one."""
    if _ESCAPE.sub("", body).count('"') % 2:  # an odd number of unescaped quotes: inside a string
        keep = len(body)
        digits = keep
        while digits > keep - 3 and body[digits - 1] in _HEX_DIGITS:
            digits -= 1
        if body[digits - 1] == "u" and _escapes(body, digits - 2):
            keep = digits - 2  # a \uXXXX escape cut short
        elif _escapes(body, keep - 1):
            keep -= 1  # a lone backslash
        if _HIGH_SURROGATE_ESCAPE.fullmatch(body, keep - 6, keep) and _escapes(body, keep - 6):
            keep -= 6  # the first half of a surrogate pair, cut before the second
        return body[:keep] + '"'
    start = len(body)
    while start > 0 and body[start - 1] not in _BARE_TOKEN_END:
        start -= 1
        if len(body) - start > _LONGEST_CUT_TOKEN:
            return None
    token = body[start:]
    for literal in _LITERALS:
        if token and literal.startswith(token) and token != literal:
            return body + literal[len(token) :]
    if _NUMBER_CUT_SHORT.fullmatch(token):
        return body + "0"
    return None


def _escapes(text: str, index: int) -> bool:
    """Whether ``text[index]`` is a backslash that starts an escape (not itself escaped)."""
    run = 0
    while index - run >= 0 and text[index - run] == "\\":
        run += 1
    return run % 2 == 1


def _line_column(text: str, position: int) -> tuple[int, int]:
    """1-based line and column of ``position``, counted as Python's json does."""
    return text.count("\n", 0, position) + 1, position - text.rfind("\n", 0, position)


def one_line(message: str) -> str:
    """An error is one line, whatever a dependency's message holds."""
    return " ".join(message.splitlines())
