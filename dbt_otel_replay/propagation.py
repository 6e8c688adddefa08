"""Trace context in and out: W3C traceparent values, the environment and carrier files.

A run joins an upstream trace given as a ``traceparent`` value, as the
TRACEPARENT / TRACESTATE environment variables, or as a carrier file; after the
replay, the invocation span's context is written as a carrier file the next
stage of the pipeline can source, load as a dotenv report or read with otel-cli.

The file is read by parsers that disagree on quoting (a shell expands ``$`` and
backquotes, docker and GitLab keep quotes verbatim), so it holds no quotes at all:
only characters that every one of them takes literally (see ``CARRIER_SAFE_CHARACTERS``).
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

from ._files import file_kind, write_output
from .errors import ContextError
from .plan import TraceContext

TRACEPARENT_VARIABLE = "TRACEPARENT"
TRACESTATE_VARIABLE = "TRACESTATE"
CARRIER_FILENAME = "traceparent"

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_TRACESTATE_MEMBER = re.compile(
    r"(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})"
    r"=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
)
_MAX_TRACESTATE_MEMBERS = 32
MAX_PROPAGATED_TRACESTATE = 512
"""The W3C limit below which tracestate must be passed on whole (dotenv consumers cap files at 5 KB)."""
_LONG_MEMBER = 128

CARRIER_SAFE_CHARACTERS = "_-*/@=+.:"
"""Besides ASCII letters and digits, the only characters a tracestate member may hold in the carrier file.

Every reader of the file takes each of them literally: sh and bash sourcing it (an
assignment is neither field-split nor globbed, so ``*`` is literal; ``:`` matters only
before ``~``, which is left out), GitLab's dotenv reports, ``docker --env-file`` and
``$GITHUB_ENV`` (verbatim after the first ``=``; GitLab then expands ``$``), systemd's
``EnvironmentFile=`` (which gives backslashes, quotes and blanks a meaning) and the
lenient readers (which strip blanks and quotes). Left out are blanks, quotes, ``$``,
backquotes, ``\\`` and ``;&|<>()`` (shell syntax), ``~`` (tilde expansion), ``#`` (a
comment to some readers), ``!`` (history expansion), ``%`` (systemd specifiers), ``^``
(a pipe to old shells) and ``?[]{}`` (globs and braces). ``,`` joins members; W3C keys
use ``_-*/@``.
"""
_CARRIER_SAFE_MEMBER = re.compile(r"[A-Za-z0-9" + re.escape(CARRIER_SAFE_CHARACTERS) + r"]+")
_CARRIER_TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")

logger = logging.getLogger(__name__)


def parse_traceparent(
    value: str, tracestate: str | None = None, *, source: str = "traceparent"
) -> TraceContext:
    """Parse a W3C ``traceparent`` value (and optional ``tracestate``).

    Args:
        value: For example ``00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01``.
        tracestate: The accompanying ``tracestate`` value, if any.
        source: Where the value came from, for the error message.

    Returns:
        The context.

    Raises:
        ContextError: If the value does not follow the W3C Trace Context format,
            or has an all-zero trace id or span id.
    """
    text = value.strip()
    match = _TRACEPARENT.fullmatch(text)
    if match is None:
        raise ContextError(
            f"{source}: {value!r} is not a W3C traceparent "
            "(expected 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>, lowercase)"
        )
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        raise ContextError(f"{source}: {value!r} has an invalid traceparent version {version}")
    if not trace_id.strip("0") or not span_id.strip("0"):
        raise ContextError(f"{source}: {value!r} has an all-zero trace id or span id")
    return TraceContext(
        trace_id=trace_id,
        span_id=span_id,
        trace_flags=int(flags, 16),
        tracestate=parse_tracestate(tracestate, source=source) if tracestate else None,
    )


def parse_tracestate(value: str, *, source: str = "tracestate") -> str | None:
    """Validate a W3C ``tracestate`` value and return it normalised (no blanks around members).

    Args:
        value: For example ``rojo=00f067aa0ba902b7,congo=t61rcWkgMzE``.
        source: Where the value came from, for the error message.

    Returns:
        The normalised value, or None when it has no members.

    Raises:
        ContextError: If a member is malformed or there are more than 32.
    """
    members = [m.strip() for m in value.split(",") if m.strip()]
    if len(members) > _MAX_TRACESTATE_MEMBERS:
        raise ContextError(f"{source}: tracestate has {len(members)} members; at most 32 are allowed")
    for member in members:
        if _TRACESTATE_MEMBER.fullmatch(member) is None:
            raise ContextError(f"{source}: {member!r} is not a valid tracestate member (key=value)")
    return ",".join(members) or None


def context_from_environment(environ: Mapping[str, str]) -> TraceContext | None:
    """The upstream context in TRACEPARENT / TRACESTATE, if TRACEPARENT is set.

    Args:
        environ: The process environment (or any mapping like it).

    Returns:
        The context, or None when TRACEPARENT is unset or empty.

    Raises:
        ContextError: If TRACEPARENT or TRACESTATE is malformed.
    """
    value = environ.get(TRACEPARENT_VARIABLE, "").strip()
    if not value:
        return None
    return parse_traceparent(value, environ.get(TRACESTATE_VARIABLE), source=f"${TRACEPARENT_VARIABLE}")


def read_carrier(path: Path) -> TraceContext:
    """Read a carrier file: KEY=VALUE lines with TRACEPARENT and optionally TRACESTATE.

    Reading is lenient, so files written by otel-cli, by hand or on Windows work too:
    ``export`` prefixes, quotes, comments, blank lines, CRLF line ends and a UTF-8
    byte order mark are accepted. Only a regular file is read: a FIFO or a device
    would block the replay or never end.

    Args:
        path: The carrier file.

    Returns:
        The context it holds.

    Raises:
        ContextError: If the file cannot be read, is not a regular file, has no
            TRACEPARENT, or holds a malformed one.
    """
    values = _parse_env_lines(_read_regular_text(path))
    if TRACEPARENT_VARIABLE not in values:
        raise ContextError(f"{path}: no TRACEPARENT=... line in the traceparent file")
    return parse_traceparent(values[TRACEPARENT_VARIABLE], values.get(TRACESTATE_VARIABLE), source=str(path))


def _read_regular_text(path: Path) -> str:
    """The file's text, opened without blocking and refused unless it is a regular file.

    The type is checked before opening (a device is never opened) and again on the open
    file (nothing swapped in between is read); O_NONBLOCK keeps the open of a FIFO from
    waiting for a writer.
    """
    problem = "cannot read the traceparent file"
    try:
        _refuse_irregular(path, os.stat(path).st_mode)
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
        with os.fdopen(os.open(path, flags), "rb") as file:
            _refuse_irregular(path, os.fstat(file.fileno()).st_mode)
            data = file.read()
    except OSError as exc:
        raise ContextError(f"{path}: {problem}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ContextError(f"{path}: {problem}: not UTF-8 (byte {exc.start})") from None


def _refuse_irregular(path: Path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = file_kind(mode)
    it_is = f"it is {kind}, not a regular file" if kind.startswith("a ") else kind
    raise ContextError(f"{path}: cannot read the traceparent file: {it_is}")


def _parse_env_lines(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip().upper()] = value
    return values


def format_carrier(context: TraceContext) -> str:
    """Render a context as carrier-file text: plain KEY=VALUE lines and nothing else.

    The result can be sourced by a shell, loaded by GitLab as a dotenv report,
    read by docker and systemd as an env file, and by otel-cli as a carrier; each
    reads the same values and none executes anything, because only characters all
    of them take literally are written (see ``carrier_tracestate``). Leaving
    tracestate members out is logged as one warning.

    Args:
        context: The context the next stage should join.

    Returns:
        ``TRACEPARENT=...`` and, only when there is one, ``TRACESTATE=...``, each ending in a newline.

    Raises:
        ValueError: If the context's ids are not lowercase hex of W3C's lengths (the
            planner never makes such a context; a library caller might).
    """
    traceparent = context.traceparent
    if _CARRIER_TRACEPARENT.fullmatch(traceparent) is None:
        raise ValueError(f"{traceparent!r} is not a W3C traceparent; refusing to write it to a carrier file")
    lines = [f"{TRACEPARENT_VARIABLE}={traceparent}"]
    tracestate, dropped = carrier_tracestate(context.tracestate)
    if dropped:
        members = "member" if dropped == 1 else "members"
        logger.warning(
            "the traceparent file leaves out %d tracestate %s holding characters that a shell or "
            "env-file reader would not take literally (it writes only letters, digits and %s)",
            dropped,
            members,
            CARRIER_SAFE_CHARACTERS,
        )
    if tracestate:
        lines.append(f"{TRACESTATE_VARIABLE}={tracestate}")
    return "".join(f"{line}\n" for line in lines)


def carrier_tracestate(tracestate: str | None) -> tuple[str | None, int]:
    """The tracestate a carrier file holds, and how many members were left out as unsafe.

    A member with any character outside letters, digits and ``CARRIER_SAFE_CHARACTERS``
    is dropped whole (W3C lets a participant remove members); quoting it instead cannot
    work, because the readers disagree on quotes. What is left is then trimmed to 512
    characters (``trim_tracestate``); trimming is not counted.

    Args:
        tracestate: The value, or None.

    Returns:
        The value to write (None when nothing is left) and the number of members dropped.
    """
    if not tracestate:
        return None, 0
    members = [m.strip(" \t") for m in tracestate.split(",")]
    members = [m for m in members if m]
    safe = [m for m in members if _CARRIER_SAFE_MEMBER.fullmatch(m)]
    return trim_tracestate(",".join(safe) or None), len(members) - len(safe)


def trim_tracestate(tracestate: str | None) -> str | None:
    """Cut a tracestate to 512 characters as W3C Trace Context allows when passing it on.

    Members longer than 128 characters go first, then members from the end (the oldest).

    Args:
        tracestate: The value, or None.

    Returns:
        The value, whole when it fits; None when nothing is left.
    """
    if not tracestate or len(tracestate) <= MAX_PROPAGATED_TRACESTATE:
        return tracestate
    members = [m for m in tracestate.split(",") if len(m) <= _LONG_MEMBER]
    while members and len(",".join(members)) > MAX_PROPAGATED_TRACESTATE:
        members.pop()
    return ",".join(members) or None


def write_carrier(path: Path, context: TraceContext) -> None:
    """Write a carrier file: atomically where it is a regular file, through a device, FIFO or link.

    Args:
        path: Where to write it.
        context: The context to write.

    Raises:
        OSError: If the directory is not writable.
    """
    write_output(path, format_carrier(context))
