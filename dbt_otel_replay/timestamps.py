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
_MINUTE_CACHE_LIMIT = 65_536
"""How many distinct minutes the fast path remembers before it starts over."""

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
    fast = _parse_usual(text)
    return fast if fast is not None else _parse_any(text)


# Seconds since the epoch at the start of each minute seen in dbt's usual form: a run's
# timestamps share a few hundred minutes, so each is validated and converted only once.
_minutes: dict[str, int] = {}


def _parse_usual(text: str) -> int | None:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (what dbt 1.x writes) in a minute already seen, else None."""
    if len(text) != 27 or text[26] != "Z" or text[19] != ".":
        return None
    minute = _minutes.get(text[:17])
    second, micros = text[17:19], text[20:26]
    if minute is None or not (
        second.isascii() and second.isdigit() and micros.isascii() and micros.isdigit()
    ):
        return None
    if second > "59":
        return None  # let the full parser refuse it
    return (minute + int(second)) * NANOS_PER_SECOND + int(micros) * _NANOS_PER_MICROSECOND


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
        if len(_minutes) >= _MINUTE_CACHE_LIMIT:
            _minutes.clear()
        _minutes[text[:17]] = seconds - second
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
