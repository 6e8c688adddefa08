"""Deliver encoded requests, synchronously, checking each answer: retries, backoff and the tally.

Every request is sent on its own and its response read: a transport error or a
retryable status is retried with exponential backoff and jitter (or after the
collector's own Retry-After or RetryInfo delay) until the request's deadline, a
partial success is reported with the collector's own words, and nothing is
queued where it could be dropped silently. How one attempt is made, and whether
its failure is retryable, is the transport's (:mod:`.transport`).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from ..stopping import STOP_GRACE_SECONDS, in_background
from .config import ExportConfig
from .requests import EncodedRequest
from .transport import Answer, PermanentError, RetryableError, StalledError, Transport, open_transport

logger = logging.getLogger(__name__)

INITIAL_BACKOFF_SECONDS = 0.5
"""The wait before the first retry."""
BACKOFF_MULTIPLIER = 2.0
"""How much longer each further wait is."""
MAX_BACKOFF_SECONDS = 8.0
"""The longest single wait between two attempts (of our own choosing: a collector's delay is kept)."""
JITTER = 0.2
"""Each backoff is scaled by a random factor in [1 - JITTER, 1 + JITTER]: the OTLP Exporter
specification says the retry strategy "MUST implement an exponential back-off with jitter to avoid
overwhelming the destination until the network is restored or the destination has recovered"
(many CI jobs failing against one collector at once must not retry in lockstep)."""
MIN_ATTEMPT_SECONDS = 0.001
"""The least time an attempt is given, even when the deadline has (just) passed."""
DEADLINE_GRACE_SECONDS = 0.25
"""How long past its deadline a request's answer is still waited for (the worker's own last read)."""
POLL_SECONDS = 0.05
"""How often the wait for an answer looks at the clock and at a stop request."""


@dataclass(frozen=True)
class Delivery:
    """What reached the receiver, and what did not.

    Attributes:
        endpoint: Where the requests went (``display_endpoint``: no credentials, no query).
        total: How many spans there were to send.
        accepted: How many spans the receiver accepted.
        requests: How many requests were accepted in full.
        unsent: The requests not accepted in full (failed, skipped after a failure,
            or partly rejected), to be saved and re-sent.
        problems: Why, one line per problem, in the receiver's words where it gave any, with
            every configured secret already redacted by the transport.
        stopped: Whether a stop request (a signal) ended the delivery before every request
            was answered.
    """

    endpoint: str
    total: int
    accepted: int
    requests: int
    unsent: tuple[EncodedRequest, ...] = ()
    problems: tuple[str, ...] = ()
    stopped: bool = False

    @property
    def complete(self) -> bool:
        """Whether every span was accepted."""
        return not self.unsent


def deliver(
    requests_: Iterable[EncodedRequest],
    config: ExportConfig,
    *,
    transport: Transport | None = None,
    sleep: Callable[[float], object] | None = None,
    clock: Callable[[], float] = time.monotonic,
    stop: threading.Event | None = None,
    jitter: Callable[[], float] = random.random,
) -> Delivery:
    """Send every request and check every answer; never drop a span silently.

    One request is on the wire at a time, sent from a worker thread while this
    thread takes the next one from ``requests_`` (encoding it, when that is a
    generator), so encoding and the collector's work overlap; requests still go
    out, and are answered, in order. A request that fails until its deadline, or
    is refused, ends the delivery: it and every request after it are returned as
    unsent (the collector is down or refusing, so trying the rest would only wait
    longer). A request the collector accepts only in part is returned as unsent
    too, and the delivery goes on.

    Each request has ``config.timeout`` seconds in all, retries and reading the answer
    included: a collector that answers a byte at a time is given up on when they are
    over (``requests``' own timeout bounds each read, not the whole answer). When
    ``stop`` is set, no further request is sent and one on the wire is given
    :data:`~..stopping.STOP_GRACE_SECONDS` to be answered; what is left is returned as
    unsent, with ``stopped`` set.

    Args:
        requests_: The encoded requests; an iterator is consumed one request at a time, so a
            large trace need not be encoded whole before the first request goes out.
        config: Where and how to send them.
        transport: The transport to use (left open, for the caller to reuse and close); by
            default the one ``config.protocol`` names, opened and closed here.
        sleep: Waits between retries (replaceable in tests); by default a wait that a stop ends.
        clock: A monotonic clock for deadlines.
        stop: Set (by a signal handler) to stop sending and return what is unsent.
        jitter: A random number in [0, 1) for each backoff (replaceable in tests).

    Returns:
        What was accepted and what was not.
    """
    halt = stop if stop is not None else threading.Event()
    pause: Callable[[float], object] = sleep or halt.wait
    sender = transport or open_transport(config)
    tally = _Tally(config.display_endpoint)
    pending = iter(requests_)
    try:
        in_flight: _InFlight | None = None
        for request in pending:
            tally.total += request.spans
            if in_flight is not None:
                settled = tally.settle(in_flight, halt, clock)
                in_flight = None
                if not settled:
                    tally.keep([request, *pending])  # kept for a re-send, not tried against a dead end
                    break
            if halt.is_set():
                tally.stopped = True
                tally.keep([request, *pending])
                break
            answer = in_background(
                _send_with_retry, sender, request, config, pause, clock, halt, jitter, name="otlp-export"
            )
            in_flight = _InFlight(request, answer, clock() + config.timeout, config.timeout)
        if in_flight is not None:
            tally.settle(in_flight, halt, clock)
    finally:
        if transport is None:
            sender.close()
    return tally.delivery()


@dataclass(frozen=True)
class _InFlight:
    """A request on the wire: its answer to come, and when it is given up on."""

    request: EncodedRequest
    answer: Future[Answer]
    deadline: float
    timeout: float


class _Tally:
    """What the collector has answered so far, request by request."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.total = self.accepted = self.complete = self.answered = 0
        self.unsent: list[EncodedRequest] = []
        self.problems: list[str] = []
        self.stopped = False

    def settle(self, flight: _InFlight, halt: threading.Event, clock: Callable[[], float]) -> bool:
        """Wait for a request's answer and count it; False when it failed for good or was stopped."""
        self.answered += 1
        request = flight.request
        try:
            response = _answer_of(flight, halt, clock)
        except _Stopped:
            self.stopped = True
            self.unsent.append(request)
            return False
        except RetryableError as exc:
            if halt.is_set():  # the worker gave up for the stop request, not for the collector
                self.stopped = True
            else:
                self.problems.append(f"{self.endpoint}: {exc}")
            self.unsent.append(request)
            return False
        except PermanentError as exc:
            self.problems.append(f"{self.endpoint}: {exc}")
            self.unsent.append(request)
            return False
        count = request.spans
        rejected = min(response.rejected_spans, count)
        self.accepted += count - rejected
        if rejected:
            self.problems.append(
                f"{self.endpoint}: the collector rejected {rejected} of {count} spans in request "
                f"{self.answered}: {response.message or 'no reason given'}"
            )
            self.unsent.append(request)
        elif response.message:
            logger.warning("%s: the collector says: %s", self.endpoint, response.message)
            self.complete += 1
        else:
            self.complete += 1
        return True

    def keep(self, requests: list[EncodedRequest]) -> None:
        """Keep requests that were not tried (the first is already counted in ``total``)."""
        self.unsent.extend(requests)
        self.total += sum(r.spans for r in requests[1:])

    def delivery(self) -> Delivery:
        """The outcome."""
        return Delivery(
            endpoint=self.endpoint,
            total=self.total,
            accepted=self.accepted,
            requests=self.complete,
            unsent=tuple(self.unsent),
            problems=tuple(self.problems),
            stopped=self.stopped,
        )


def _stalled(timeout: float) -> str:
    """What a request whose deadline ran out before its answer was complete is reported as."""
    return f"no complete answer within {timeout:g} s: the collector or the network is stalled (see --timeout)"


class _Stopped(Exception):
    """The request was not answered before a stop request's grace ran out."""


def _answer_of(flight: _InFlight, halt: threading.Event, clock: Callable[[], float]) -> Answer:
    """The request's answer, waited for in short steps so a stop or the overall deadline is seen.

    Raises:
        _Stopped: When ``halt`` is set and the answer does not come within the grace.
        RetryableError: When the deadline passed without a complete answer.
    """
    overdue = flight.deadline + DEADLINE_GRACE_SECONDS
    stop_by = math.inf
    while True:
        now = clock()
        if halt.is_set() and stop_by == math.inf:
            stop_by = now + STOP_GRACE_SECONDS
        if now >= min(overdue, stop_by):
            if flight.answer.done():
                return flight.answer.result()
            if now >= stop_by:
                raise _Stopped
            raise RetryableError(_stalled(flight.timeout))
        try:
            return flight.answer.result(timeout=min(POLL_SECONDS, min(overdue, stop_by) - now))
        except FutureTimeout:
            continue


def _send_with_retry(
    sender: Transport,
    request: EncodedRequest,
    config: ExportConfig,
    sleep: Callable[[float], object],
    clock: Callable[[], float],
    halt: threading.Event,
    jitter: Callable[[], float],
) -> Answer:
    """Send until accepted, refused, or the next attempt would come after the deadline.

    The wait before a retry is the collector's own (Retry-After, RetryInfo: the OTLP specification
    says the client SHOULD honour it) when it gave one, else the backoff scaled by the jitter. The
    "gave up" line says the time really spent: the last wait that would pass the deadline is not
    waited, so that can be less than ``config.timeout``.
    """
    started = clock()
    deadline = started + config.timeout
    backoff = INITIAL_BACKOFF_SECONDS
    attempt = 1
    while True:
        try:
            return sender.send(request, timeout=max(deadline - clock(), MIN_ATTEMPT_SECONDS))
        except StalledError:  # the attempt had what was left of the deadline: it is spent
            raise RetryableError(_stalled(config.timeout)) from None
        except RetryableError as exc:
            asked = exc.retry_after
            wait = asked if asked is not None else backoff * (1 + JITTER * (2 * jitter() - 1))
            now = clock()
            if now + wait >= deadline:
                spent = f"{attempt} attempt{'s' if attempt != 1 else ''} in {round(now - started, 1):g} s"
                if asked is not None and asked > deadline - now:
                    spent += f", the collector asking to wait {asked:g} s more"
                raise RetryableError(f"{exc} (gave up after {spent}; see --timeout)") from None
            if halt.is_set():
                raise
            logger.warning("%s: %s; retrying in %.1f s", config.display_endpoint, exc, wait)
            sleep(wait)
            if halt.is_set():
                raise
            backoff = min(backoff * BACKOFF_MULTIPLIER, MAX_BACKOFF_SECONDS)
            attempt += 1
