"""Where results go: the one writer of every output (trace, report, carrier file, spill file).

The tool often runs as root in CI containers, where replacing whatever a path names
breaks every later step on the machine: ``--output /dev/null`` must not turn the null
device into a regular file. So a path is written *into* unless it names a regular file
(or nothing yet); only then is it replaced, atomically, so a reader sees either the old
file or the whole new one. Symbolic links are followed and survive: the file they point
to is what is written.

The spill file is the one file two processes write at once (a replay appending what a
collector refused while a ``resend`` drains it), so appending and re-sending hold the
file's ``flock`` lock; an append that fails leaves the file exactly as it was.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TextIO

from .errors import ConfigError

logger = logging.getLogger(__name__)

STDOUT = Path("-")
"""The path that means standard output."""

NEW_FILE_MODE = 0o644
"""The mode of a file the tool creates (an existing file keeps its own)."""

_MAX_LINKS = 40
"""Links followed before giving up, as the kernel does (ELOOP)."""

_WRITTEN_IN_PLACE = ("/proc/", "/dev/fd/")
"""Where paths are views of open files (``/dev/stdout`` leads here): written into, never renamed over."""

_MAX_LOCK_TRIES = 64
"""Times a lock is taken again because the file was replaced or deleted meanwhile, before giving up."""

_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL)
"""``flock`` errors of file systems without locks: the file is then used unlocked, as before locks."""


def write_output(path: Path, text: str | Iterable[str], *, append: bool = False) -> None:
    """Write (or append) text to an output path, whatever it names; see :func:`open_output`.

    Args:
        path: The output: ``Path("-")``, a file, a symlink, a device node or a FIFO.
        text: The content, whole or in pieces (written as they come, so they need not fit in memory).
        append: Add to what is there instead of replacing it (the spill file).

    Raises:
        OSError: If it cannot be written (a FIFO nobody reads, a directory, no permission ...).
    """
    with open_output(path, append=append) as handle:
        handle.writelines([text] if isinstance(text, str) else text)


_NOT_REGULAR = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, in words, for the messages that refuse it.

    Inputs (artifacts, carrier files) are read only from regular files, because a FIFO blocks
    and a device can stream forever; this names what was found instead.

    Args:
        mode: ``st_mode`` from ``os.stat``.

    Returns:
        ``a FIFO``, ``a character device``, ... or ``not a regular file`` for any other type.
    """
    return next((name for test, name in _NOT_REGULAR if test(mode)), "not a regular file")


@contextmanager
def open_output(path: Path, *, append: bool = False) -> Iterator[TextIO]:
    """Open an output for writing text, without ever replacing what is not a regular file.

    * ``Path("-")``: standard output (flushed at the end, never closed).
    * A symlink: followed (every hop); its final target is written as below, the link stays.
    * A device node or FIFO (or anything behind ``/proc`` or ``/dev/fd``, such as ``/dev/stdout``):
      opened for writing in place, never truncated, never renamed over; a regular file there (the
      shell redirected stdout to it) is appended to, so ``>> log`` keeps what earlier steps wrote.
      A FIFO is first opened without blocking, so one that nobody reads is an error instead of
      a hang; once open, writes block while the reader catches up.
    * A regular file or a new one: written to a temporary file beside it, which is renamed
      over it when the block ends without an error (keeping an existing file's mode and, as
      root, its owner), so a reader never sees half a file; the directory is created when
      missing. With ``append``, opened for appending under the file's lock (see :func:`locked`)
      and synced to disk at the end instead; if anything fails, the file is cut back to the size
      it had (a file the append created is deleted), so a full disk never leaves half a line.

    Args:
        path: The output.
        append: Add to an existing file instead of replacing it.

    Yields:
        A text handle (UTF-8) to write to; the output is complete when the block ends.

    Raises:
        OSError: If it cannot be opened or written; a regular file is then left as it was.
    """
    if path == STDOUT:
        yield sys.stdout
        sys.stdout.flush()
        return
    target, in_place = _follow(path)
    existing = _stat(target)
    kind = existing.st_mode if existing is not None else 0
    if stat.S_ISDIR(kind):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if in_place or (existing is not None and not stat.S_ISREG(kind)):
        with _open_in_place(path, target, kind, append=append or stat.S_ISREG(kind)) as handle:
            yield handle
    elif append:
        target.parent.mkdir(parents=True, exist_ok=True)
        with _append(path, target) as handle:
            yield handle
    else:
        with _replace(target, existing) as handle:
            yield handle


def remove_output(path: Path) -> bool:
    """Delete a file whose content has all been used (a re-sent spill file), if it is a regular file.

    Only the regular file is deleted: a symlink to it stays (a later spill through it
    recreates the file), and a device node or FIFO is never removed.

    Returns:
        Whether a file was deleted (False for a device node, a FIFO or nothing there), so
        the caller says "removed" only when it is true.

    Raises:
        OSError: If the file cannot be deleted.
    """
    target, in_place = _follow(path)
    existing = _stat(target)
    if not in_place and existing is not None and stat.S_ISREG(existing.st_mode):
        target.unlink()
        return True
    return False


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the lock of the regular file a path names, from reading it to rewriting or deleting it.

    A ``resend`` reads a spill file, sends it and then rewrites or deletes it; a replay
    appending to the same file meanwhile would lose its spans with the deleted file. Appends
    (:func:`open_output` with ``append``) take the same lock, so they wait for the rewrite
    and then go to the file that is there after it (a new one if it was deleted).

    Nothing is locked when the path names a device node, a FIFO or nothing (there is no
    file to lose), or the file cannot be opened (the read that follows says why).

    Args:
        path: The file (symlinks are followed, as for writing).

    Yields:
        Nothing; the lock is held until the block ends.
    """
    target, in_place = _follow(path)
    existing = _stat(target)
    descriptor: int | None = None
    if not in_place and existing is not None and stat.S_ISREG(existing.st_mode):
        with suppress(OSError):  # missing since, or unreadable: the caller's read reports it
            descriptor, _ = _open_locked(path, target, create=False)
    try:
        yield
    finally:
        if descriptor is not None:
            os.close(descriptor)  # releases the lock


def refuse_inputs(path: Path | None, inputs: Iterable[Path | None]) -> None:
    """Refuse an output path that names one of the run's input artifacts (``--output run_results.json``).

    Called before anything is written or sent, so a typo cannot destroy the run it replays.
    Paths are compared as files (device and inode), so links and other spellings are caught.

    Args:
        path: An output path (None and ``Path("-")`` are never inputs).
        inputs: The artifacts read (None entries are skipped).

    Raises:
        ConfigError: If the output is one of the inputs.
    """
    if path is None or path == STDOUT:
        return
    output = _stat(path)
    if output is None or not stat.S_ISREG(output.st_mode):
        return  # nothing there to overwrite, or written into rather than replaced
    for source in inputs:
        read = _stat(source) if source is not None else None
        if read is not None and (read.st_dev, read.st_ino) == (output.st_dev, output.st_ino):
            raise ConfigError(f"{path}: is an input artifact of this run; refusing to overwrite it")


def _stat(path: Path) -> os.stat_result | None:
    """What the path names after following links, or None when nothing is there (yet)."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _follow(path: Path) -> tuple[Path, bool]:
    """Follow a path's symlinks to what it finally names, and whether that must be written in place.

    Followed one hop at a time rather than with ``realpath`` because ``/proc/self/fd/1`` (where
    ``/dev/stdout`` leads) is not a real link: its text names a pipe or a file the process has open,
    possibly deleted, which must be written through the link, never replaced.
    """
    current = os.path.join(os.getcwd(), path)
    for _ in range(_MAX_LINKS):
        current = os.path.join(os.path.realpath(os.path.dirname(current)), os.path.basename(current))
        if current.startswith(_WRITTEN_IN_PLACE):
            return Path(current), True
        try:
            link = os.readlink(current)
        except OSError:  # not a link, or nothing there yet
            return Path(current), False
        current = os.path.join(os.path.dirname(current), link)
    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(path))


@contextmanager
def _append(path: Path, target: Path) -> Iterator[TextIO]:
    """Append to a regular file under its lock; on any failure, cut it back to what it was.

    A disk that fills up part way through a write leaves a line cut short, which would make
    the whole spill file unreadable: the size before the append is restored instead (and a
    file the append created is deleted), so the spans already saved stay re-sendable.
    """
    descriptor, created = _open_locked(path, target, create=True)
    try:
        size = os.fstat(descriptor).st_size
        try:
            with open(descriptor, "a", encoding="utf-8", closefd=False) as handle:
                yield handle
            os.fsync(descriptor)
        except BaseException:
            _cut_back(target, descriptor, size, created)
            raise
    finally:
        os.close(descriptor)  # releases the lock


def _cut_back(target: Path, descriptor: int, size: int, created: bool) -> None:
    """Undo a failed append (the lock is still held): the old size, or no file if it was new."""
    with suppress(OSError):  # the append's own error is the one to report
        if created and size == 0:
            target.unlink()
        else:
            os.ftruncate(descriptor, size)
            os.fsync(descriptor)


def _open_locked(path: Path, target: Path, *, create: bool) -> tuple[int, bool]:
    """Open a regular file (for appending when ``create``, else for reading) and lock it exclusively.

    The lock is on the file, not the name: a resend that held it may have replaced or deleted
    the file before letting go, so once locked, the name must still lead to the file locked,
    else it is opened and locked again.

    Returns:
        The descriptor (closing it releases the lock) and whether this call created the file.

    Raises:
        OSError: If the file cannot be opened or locked.
    """
    for _ in range(_MAX_LOCK_TRIES):
        descriptor, created = _open_regular(target, create=create)
        try:
            _lock(path, descriptor)
            held = os.fstat(descriptor)
            now = _stat(target)
        except BaseException:
            os.close(descriptor)
            raise
        if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            return descriptor, created
        os.close(descriptor)  # replaced or deleted while we waited: lock what is there now
    raise OSError(errno.EAGAIN, "replaced by another process every time it was locked", str(path))


def _open_regular(target: Path, *, create: bool) -> tuple[int, bool]:
    """Open a file for appending (created if missing, and then said so) or for reading."""
    if not create:
        return os.open(target, os.O_RDONLY | os.O_CLOEXEC), False
    flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
    while True:
        try:
            return os.open(target, flags | os.O_CREAT | os.O_EXCL, 0o666), True
        except FileExistsError:
            pass
        try:
            return os.open(target, flags), False
        except FileNotFoundError:
            continue  # deleted in between (a resend finished): create it


def _lock(path: Path, descriptor: int) -> None:
    """Lock a file exclusively, saying so when another process holds it (a resend may take a while)."""
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.warning(
                "%s: waiting for another dbt-otel-replay (a resend or a spill) to finish with it", path
            )
            fcntl.flock(descriptor, fcntl.LOCK_EX)
    except OSError as exc:
        if exc.errno not in _NO_LOCKS:
            raise


@contextmanager
def _open_in_place(path: Path, target: Path, kind: int, *, append: bool) -> Iterator[TextIO]:
    """Open a device node, FIFO or /proc file for writing, without truncating or replacing it."""
    if stat.S_ISSOCK(kind):
        raise OSError(errno.ENXIO, "a socket, not a file, a device or a FIFO", str(path))
    flags = os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | (os.O_APPEND if append else 0)
    try:
        descriptor = os.open(target, flags)
    except OSError as exc:
        if exc.errno == errno.ENXIO and stat.S_ISFIFO(kind):
            raise OSError(errno.ENXIO, "a FIFO that nothing is reading", str(path)) from None
        raise
    os.set_blocking(descriptor, True)  # non-blocking only to detect a FIFO without a reader
    with open(descriptor, "w", encoding="utf-8") as handle:
        yield handle


@contextmanager
def _replace(target: Path, existing: os.stat_result | None) -> Iterator[TextIO]:
    """Write a temporary file beside a regular file (or a new one) and rename it over it at the end."""
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with open(descriptor, "w", encoding="utf-8") as handle:
            yield handle
        if existing is not None and os.geteuid() == 0:
            # as root, give the file back to whoever owned it (before chmod: chown clears set-id bits)
            with suppress(OSError):
                os.chown(temporary, existing.st_uid, existing.st_gid)
        os.chmod(temporary, stat.S_IMODE(existing.st_mode) if existing is not None else NEW_FILE_MODE)
        os.replace(temporary, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
