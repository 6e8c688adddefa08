"""SIGTERM and SIGINT while spans are being sent: stop, save what is unsent, hand on the context, exit.

CI cancellation and Kubernetes send SIGTERM, a person presses Ctrl-C: either way the
spans not yet accepted must be saved, not lost with the process. The first signal only
sets a :class:`StopRequest`; delivery checks it between requests and while it waits
for an answer, so sending stops within :data:`STOP_GRACE_SECONDS` or so, then the
replay spills what is left, writes the traceparent file and exits with
``128 + the signal number`` (130 for SIGINT, 143 for SIGTERM, as a shell reports a
process the signal killed). A second signal exits at once: whoever sends it has
chosen to lose what is unsent. Work that may still be running when the process
ends (a request the collector never answers, a run read ahead) runs on daemon
threads (:func:`in_background`), so it never holds the exit up.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from types import FrameType
from typing import TypeVar

from .errors import EXIT_SIGNAL_BASE

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
"""The signals that stop a replay, a backfill or a re-send in good order."""
STOP_GRACE_SECONDS = 0.5
"""How long a request already on the wire may still be answered after the first signal."""

_T = TypeVar("_T")


class StopRequest(threading.Event):
    """Set by the first stop signal; says which one it was."""

    def __init__(self) -> None:
        super().__init__()
        self.signum: int = 0

    def request(self, signum: int) -> None:
        """Ask everything that checks this request to stop (a test may call it instead of a signal)."""
        self.signum = signum
        self.set()

    @property
    def name(self) -> str:
        """The signal's name, e.g. ``SIGTERM``."""
        return signal.Signals(self.signum).name if self.signum else "a stop request"

    @property
    def exit_code(self) -> int:
        """The exit code a process stopped by this signal reports (143 for SIGTERM)."""
        return EXIT_SIGNAL_BASE + self.signum

    def stopped_after(self, sent: int, total: int) -> str:
        """The one line's start: ``stopped by SIGTERM after 3 of 94 spans were delivered``."""
        return f"stopped by {self.name} after {sent} of {total} spans were delivered"


@contextmanager
def stop_on_signals(prog: str) -> Iterator[StopRequest]:
    """Within the block, the first SIGTERM or SIGINT sets the request, a second exits at once.

    Handlers can only be installed from the main thread; elsewhere (a library call from a
    worker thread) the request is returned unset and the signals keep their handlers.

    Args:
        prog: The program's name, for the one line a second signal prints.

    Yields:
        The request to pass to what sends.
    """
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            name = signal.Signals(signum).name
            line = f"{prog}: error: {name} again: exiting at once; spans not yet saved are lost\n"
            os.write(2, line.encode())
            os._exit(EXIT_SIGNAL_BASE + signum)
        stop.request(signum)

    previous = {signum: signal.signal(signum, handle) for signum in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def in_background(function: Callable[..., _T], *args: object, name: str) -> Future[_T]:
    """Run ``function(*args)`` on a daemon thread: its result, or its exception, in a future.

    A thread pool's workers are joined when the interpreter exits, so one blocked on a
    collector that trickles its answer would keep a stopped process alive; a daemon
    thread does not.
    """
    future: Future[_T] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(function(*args))
        except BaseException as exc:  # handed to whoever waits for the future
            future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future
