"""A one-line progress bar for backfills, drawn on stderr only when it is a terminal."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

_WIDTH = 24


class Progress:
    """Runs done, spans sent, spans per second and the time left, redrawn in place."""

    def __init__(self, total_runs: int, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        """Start the bar.

        Args:
            total_runs: How many runs the backfill will go through.
            stream: A terminal (the caller checks ``isatty``).
            clock: A monotonic clock.
        """
        self.total, self.stream, self.clock = total_runs, stream, clock
        self.started = clock()
        self.runs = self.spans = 0

    def advance(self, spans: int) -> None:
        """Count one more run and its spans, and redraw."""
        self.runs += 1
        self.spans += spans
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = self.spans / elapsed
        left = (self.total - self.runs) * elapsed / self.runs if self.runs else 0.0
        filled = int(_WIDTH * self.runs / max(self.total, 1))
        bar = "#" * filled + "-" * (_WIDTH - filled)
        self.stream.write(
            f"\r[{bar}] {self.runs}/{self.total} runs  {self.spans:,} spans  {rate:,.0f} spans/s  "
            f"eta {_duration(left)}  "
        )
        self.stream.flush()

    def clear(self) -> None:
        """Erase the bar's line, so other output can be written there before the next redraw."""
        self.stream.write("\r\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        """End the line the bar was drawn on."""
        self.stream.write("\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
