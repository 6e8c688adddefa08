"""Recovering the date and the UTC offset of a text log from run_results.json's node times.

dbt's text log prints the machine's local time of day, without date or zone (1.0 to 1.3 print
the date in the header). run_results.json times every node in UTC. The offset is the one
multiple of 15 minutes in [-12 h, +14 h] under which every line that names a node (``Began
running node``, ``Finished running node``, a statement on a node's connection) falls inside
that node's recorded window, give or take :data:`ALIGNMENT_TOLERANCE_NS`. Pure functions of
the anchors the parsers collected: no I/O, no clock.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence

ALIGNMENT_TOLERANCE_NS = 2_000_000_000
"""How far outside its node's recorded window a log line may fall (dbt rounds, and logs around the timing)."""
QUARTER_HOUR_NS = 900 * 1_000_000_000
DAY_NS = 86_400 * 1_000_000_000
MIN_OFFSET_NS = -12 * 3600 * 1_000_000_000
MAX_OFFSET_NS = 14 * 3600 * 1_000_000_000
US = 1_000
"""Nanoseconds per microsecond: text times are local microseconds, JSON times UTC nanoseconds."""


def align(
    anchors: tuple[Sequence[str], Sequence[int]],
    node_times: Mapping[str, tuple[int, int]],
    header_date: tuple[int, int, int] | None,
    dst_jump_us: int | None,
) -> tuple[int, int] | str:
    """(UTC ns of local time 0, UTC offset ns) for a text log, or why there is none.

    Args:
        anchors: The nodes its lines name, and their local microseconds since its first midnight.
        node_times: unique_id -> (start, end) in UTC nanoseconds.
        header_date: The date printed in a dbt 1.0-1.3 header, which settles offsets a day apart.
        dst_jump_us: How far local time went back within the invocation, if it did.
    """
    low, high, count = intersect(anchors, node_times, US)
    if count == 0:
        return "no line of it names a node run_results.json timed, so its local time cannot be placed"
    if low > high:
        return _misfit(
            "the node times in the log fit no single UTC offset against run_results.json", dst_jump_us
        )
    first = -(-low // QUARTER_HOUR_NS)
    last = high // QUARTER_HOUR_NS
    if first > last:
        return _misfit(
            "the node times in the log fit no whole-quarter-hour UTC offset against run_results.json",
            dst_jump_us,
        )
    if last > first:
        return "the node times in the log fit several UTC offsets against run_results.json (ambiguous)"
    base = first * QUARTER_HOUR_NS  # UTC of the first day's local midnight = that day - offset
    if header_date is not None:
        day = date_ns(*header_date)
        offset = day - base
        if offset % QUARTER_HOUR_NS or not MIN_OFFSET_NS <= offset <= MAX_OFFSET_NS:
            return "the header's date does not agree with run_results.json's times"
        return base, offset
    return base, offset_of(base)


def check_utc(
    anchors: tuple[Sequence[str], Sequence[int]],
    node_times: Mapping[str, tuple[int, int]],
    scale: int,
    base: int = 0,
) -> str | None:
    """Why a log with UTC times (JSON, dbt Fusion) disagrees with run_results.json, or None."""
    low, high, count = intersect(anchors, node_times, scale)
    if count and not low - base <= 0 <= high - base:
        return "the log's UTC times do not agree with run_results.json's node times"
    return None


def _misfit(problem: str, dst_jump_us: int | None) -> str:
    if dst_jump_us is not None:
        minutes = round(dst_jump_us / 60_000_000)
        return f"{problem} (local time went back {minutes} min within it: a daylight-saving change?)"
    return problem


def intersect(
    anchors: tuple[Sequence[str], Sequence[int]], node_times: Mapping[str, tuple[int, int]], scale: int
) -> tuple[int, int, int]:
    """The shifts (UTC minus log time, ns) under which every anchor lies in its node's window."""
    low = -(1 << 62)
    high = 1 << 62
    count = 0
    get = node_times.get
    nodes, times = anchors
    for node_id, time in zip(nodes, times, strict=True):
        window = get(node_id)
        if window is None:
            continue
        at = time * scale
        start, end = window
        if start - ALIGNMENT_TOLERANCE_NS - at > low:
            low = start - ALIGNMENT_TOLERANCE_NS - at
        if end + ALIGNMENT_TOLERANCE_NS - at < high:
            high = end + ALIGNMENT_TOLERANCE_NS - at
        count += 1
    return low, high, count


def offset_of(base: int) -> int:
    """The UTC offset for a base (UTC of local midnight) when the date is unknown.

    base = day - offset with day a whole UTC day, so the offset is known modulo 24 hours;
    for -12:00..-10:00 versus +12:00..+14:00 (the same instants) the more populated zone wins:
    east of UTC (New Zealand, Fiji, Tonga, Chatham), except -10:00 (Hawaii) over +14:00.
    """
    offset = -base % DAY_NS
    if offset > MAX_OFFSET_NS:
        offset -= DAY_NS
    if offset == MAX_OFFSET_NS:
        offset -= DAY_NS
    return offset


def date_ns(year: int, month: int, day: int) -> int:
    """UTC nanoseconds of a date's midnight."""
    return calendar.timegm((year, month, day, 0, 0, 0, 0, 0, 0)) * 1_000_000_000


def midnight_ns(iso: str) -> int:
    """UTC nanoseconds of the midnight that begins an ISO 8601 timestamp's date."""
    return date_ns(int(iso[0:4]), int(iso[5:7]), int(iso[8:10]))


def micros_of_day(stamp: str) -> int:
    """Microseconds since midnight of ``HH:MM:SS[.ffffff]`` (0 when it is not a time)."""
    try:
        seconds = (int(stamp[0:2]) * 60 + int(stamp[3:5])) * 60 + int(stamp[6:8])
        fraction = stamp[9:15].rstrip("Z").ljust(6, "0")
        return seconds * 1_000_000 + int(fraction or 0)
    except ValueError:
        return 0
