"""Writing files safely: atomic replacement, the user's umask, and pairs of files that appear together."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from monai_singanseg.errors import SinGANSegInputError

__all__ = ["atomic_write", "atomic_write_together", "check_output_folder", "claim_output", "is_disk_full"]


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def _temporary(path: Path) -> str:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{''.join(path.suffixes)}", dir=path.parent)
    os.close(fd)
    return tmp


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it over ``path``.

    A crash mid-write leaves the old file (if any) intact, never a half-written one. The file gets the mode a plain
    ``open`` would give it (``0o666`` less the umask), not the temporary file's private ``0o600``, so outputs on a
    shared file system stay readable by the group as the user's umask intends.
    """
    atomic_write_together([(path, write)])


def atomic_write_together(files: Sequence[tuple[str | os.PathLike, Callable[[str], object]]]) -> None:
    """Write several files (an image and its label) so that they appear together or not at all.

    Every file is written to a temporary name first; only when all are written are they renamed, and an
    interruption between two renames (Ctrl-C, or SIGTERM turned into an exception by the caller) removes the ones
    already renamed, so no file is ever left without its partners.
    """
    targets = [Path(path) for path, _ in files]
    temporary: list[str] = []
    renamed: list[Path] = []
    try:
        for path, (_, write) in zip(targets, files):
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary.append(_temporary(path))
            write(temporary[-1])
            os.chmod(temporary[-1], 0o666 & ~_umask())
        for tmp, path in zip(temporary, targets):
            os.replace(tmp, path)
            renamed.append(path)
    except BaseException:
        if len(renamed) < len(targets):
            for path in renamed:
                path.unlink(missing_ok=True)
        raise
    finally:
        for tmp in temporary:
            if os.path.exists(tmp):
                os.remove(tmp)


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` is a write that failed for want of space: ``OSError`` ENOSPC (or EDQUOT, a full quota), or
    torch.save's zip writer failing (a ``RuntimeError`` from ``inline_container.cc``, which carries no errno; a full
    disk is what makes it fail in practice)."""
    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(err, RuntimeError) and any(k in str(err) for k in ("inline_container", "PytorchStreamWriter"))


def check_output_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and make sure files can be written in it, before any work is done.

    Raises:
        SinGANSegInputError: ``folder`` is a file, or cannot be created or written.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SinGANSegInputError(f"{folder}: exists and is not a folder.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = Path(_temporary(folder / "write-test"))
        probe.unlink()
    except OSError as err:
        raise SinGANSegInputError(f"{folder}: cannot write there ({err.strerror or err}).") from None
    return folder


def _lock_holder(lock: Path) -> str:
    """Who holds ``lock``, in words, saying when it is stale (its process on this machine is gone)."""
    try:
        pid_text, host = (lock.read_text().split() + ["", ""])[:2]
        pid = int(pid_text)
    except (OSError, ValueError):
        return "held by an unknown process"
    if host == socket.gethostname():
        try:
            os.kill(pid, 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            return f"a stale lock: process {pid} that made it is gone; delete the lock if no run writes there"
        except PermissionError:
            pass  # it exists, under another user
    return f"held by process {pid} on {host}"


@contextlib.contextmanager
def claim_output(path: str | os.PathLike) -> Iterator[Path]:
    """Claim ``path`` for this run for the block: ``<path>.lock`` is created atomically (``O_CREAT | O_EXCL``), so
    of two runs started together on one output exactly one gets it, and removed at the end of the block.

    Checking that the output does not exist is not enough: both runs pass the check, both train, both say they
    wrote, and one model is lost.

    Raises:
        SinGANSegInputError: another run holds the lock (or a crashed one left it), naming the lock file.
    """
    path = Path(path)
    lock = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_umask())
    except FileExistsError:
        raise SinGANSegInputError(f"{path}: another run is writing it ({lock} exists, {_lock_holder(lock)}).") from None
    except OSError as err:
        raise SinGANSegInputError(f"{path}: cannot write there ({err.strerror or err}).") from None
    try:
        with os.fdopen(fd, "w") as file:
            file.write(f"{os.getpid()} {socket.gethostname()}\n")
        yield path
    finally:
        lock.unlink(missing_ok=True)
