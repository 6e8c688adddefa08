"""Exact conversion of the timestamps dbt writes into Unix nanoseconds.

dbt writes ISO 8601 times with a 'Z' or '+00:00' offset, with or without a
fraction, and (before 1.0) without any offset at all, meaning UTC. The parser is
pure integer arithmetic, so the microseconds dbt recorded survive exactly, and it
accepts the 'Z' that Python 3.10's ``datetime.fromisoformat`` rejects.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import re

NANOS_PER_SECOND = 1_000_000_000
_NANOS_PER_MICROSECOND = 1_000
_SECONDS_CACHE_LIMIT = 1 << 17
"""How many distinct seconds the fast path remembers before it starts over (about 15 MB at most)."""

_ISO_8601 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})"
    r"(?:[.,](\d+))?"
    r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?"
)


def parse_timestamp(text: str) -> int:
    """Convert an ISO 8601 timestamp into nanoseconds since the Unix epoch.

    Args:
        text: A timestamp such as ``2024-05-01T12:00:03.123456Z``. A missing
            offset means UTC, as in dbt's older artifacts.

    Returns:
        The instant as an integer count of nanoseconds. Digits beyond the
        ninth fractional digit are dropped.

    Raises:
        ValueError: If ``text`` is not such a timestamp or names an impossible date.
    """
    if len(text) == 27 and text[26] == "Z" and text[19] == ".":  # dbt 1.x: 2024-05-01T12:00:03.123456Z
        second = _seconds.get(text[:19])
        micros = text[20:26]
        if second is not None and micros.isdigit() and micros.isascii():
            return second + int(micros) * _NANOS_PER_MICROSECOND
    return _parse_any(text)


# The instant of each second already seen in dbt's usual form, in nanoseconds: a run's
# timestamps share far fewer seconds than there are timestamps, so each second is validated
# and converted once, and the rest of a timestamp is its microseconds.
_seconds: dict[str, int] = {}


def _parse_any(text: str) -> int:
    match = _ISO_8601.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an ISO 8601 timestamp: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    # datetime validates the calendar (month 13, February 30, hour 25 ...).
    _dt.datetime(year, month, day, hour, minute, second)
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    fraction = (match.group(7) or "")[:9].ljust(9, "0")
    if len(text) == 27 and text[10] == "T" and text[19] == "." and text[26] == "Z":
        if len(_seconds) >= _SECONDS_CACHE_LIMIT:
            _seconds.clear()
        _seconds[text[:19]] = seconds * NANOS_PER_SECOND
    return (seconds - _offset_seconds(match.group(8))) * NANOS_PER_SECOND + int(fraction)


def _offset_seconds(offset: str | None) -> int:
    if offset is None or offset in ("Z", "z"):
        return 0
    sign = -1 if offset[0] == "-" else 1
    digits = offset[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"impossible UTC offset {offset!r}")
    return sign * (hours * 3600 + minutes * 60)


def format_timestamp(nanos: int) -> str:
    """Render Unix nanoseconds as an ISO 8601 UTC timestamp with microseconds.

    Args:
        nanos: Nanoseconds since the Unix epoch.

    Returns:
        The instant, e.g. ``2024-05-01T12:00:03.123456Z``.
    """
    seconds, rest = divmod(nanos, NANOS_PER_SECOND)
    moment = _dt.datetime.fromtimestamp(seconds, tz=_dt.timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{rest // 1000:06d}Z"
