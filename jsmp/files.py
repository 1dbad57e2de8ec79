"""Writing user-visible files safely: one atomic-write helper and one destination check.

Every command that writes (ingest, synth, predict, train, tune, bench caches) goes through
these, so the guarantees in docs/safety.md hold everywhere:

- `atomic_path(dst)`: work on a temporary sibling `.NAME.tmp-<pid>-<rand>`, renamed onto `dst`
  only when the block ends without an exception; on an exception the temp is removed. A
  process killed midway leaves only the temp, which `remove_stale_temps(dst)` (called by the
  next write to `dst`) deletes once its writer pid is gone.
- `claim_destination(dst, ...)`: before any long work, refuse (one-line UserError) to replace
  a path that is not the command's own kind of output or empty, one equal to or containing an
  input, or one whose parent is not writable.
- `replace_dir(src, dst, is_own)`: the final swap of a finished output directory, under
  `locked(dst)` so two writers of one destination take turns, and never over a non-own path.
- `preallocate(f, size)` before memory-mapping a file for writing, and `disk_full_error(e, ...)`:
  a full disk is then one line saying so, never a SIGBUS.
- `read_json(path)`: reading such a file back (a run's metrics.json) by whichever stage needs it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from jsmp.errors import UserError
from jsmp.processes import pid_alive

TMP_MARK = ".tmp-"


def temp_sibling(path: str | os.PathLike) -> Path:
    """A fresh hidden temp path beside `path`: `.NAME.tmp-<pid>-<8 hex>` (the pid lets a later
    write tell a killed writer's leftovers from a live one's)."""
    path = Path(path)
    return path.parent / f".{path.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}"


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Delete the temps of earlier writes to `path` whose writer process is gone; returns them."""
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{path.name}{TMP_MARK}*"):
        pid = tmp.name.rsplit(TMP_MARK, 1)[1].split("-")[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            _remove(tmp)
            removed.append(tmp)
    return removed


def _remove(path: Path) -> None:
    """Remove a file or directory tree, as far as permissions allow."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(dst: str | os.PathLike, replace: Callable[[Path, Path], None] | None = None) -> Iterator[Path]:
    """Yield a temp path beside `dst` to write a file or directory into; on success it is
    renamed onto `dst` (`replace(tmp, dst)` if given, else os.replace), on error removed.

    Callers check with `claim_destination` first that `dst` may be replaced.
    """
    dst = Path(dst)
    remove_stale_temps(dst)
    tmp = temp_sibling(dst)
    try:
        yield tmp
        (replace or os.replace)(tmp, dst)
    except BaseException:
        _remove(tmp)
        raise


def write_text_atomic(dst: str | os.PathLike, text: str) -> Path:
    """Write `text` to `dst` through a temp file and a rename."""
    with atomic_path(dst) as tmp:
        tmp.write_text(text)
    return Path(dst)


def read_json(path: str | os.PathLike) -> dict | None:
    """A JSON file's object (a run's metrics.json); None if there is none, it cannot be read or
    it is not a JSON object."""
    try:
        out = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return out if isinstance(out, dict) else None


@contextlib.contextmanager
def locked(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on `path` among jsmp processes (waiting while another holds it):
    an flock on the sibling `.NAME.lock`, which is removed on release."""
    path = Path(path)
    lock = path.parent / f".{path.name}.lock"
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:  # not unlinked by the holder before us
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        os.unlink(lock)
        os.close(fd)


def replace_dir(src: Path, dst: Path, is_own: Callable[[Path], bool], what: str) -> None:
    """Move the finished directory `src` onto `dst` (`what` names it in errors), holding `locked(dst)`.

    `dst` absent or an empty directory is replaced by one rename; one that `is_own` is first
    renamed to a temp name (which `remove_stale_temps` clears should this process die before
    removing it). Anything else at `dst` (put there after `claim_destination`) is left alone:
    UserError, and `src` stays for the caller to remove.
    """
    with locked(dst):
        if not (dst.is_symlink() or dst.exists()) or is_empty_dir(dst):
            os.replace(src, dst)
            return
        if dst.is_symlink() or not is_own(dst):
            raise UserError(f"{what} {dst}: something else was put there while jsmp was writing; left it untouched. "
                            f"Move it away and run again")
        trash = temp_sibling(dst)
        os.rename(dst, trash)
        try:
            os.rename(src, dst)
        except BaseException:
            os.rename(trash, dst)
            raise
    _remove(trash)


def preallocate(f, size: int) -> None:
    """Reserve the first `size` bytes on disk for the binary file `f` open for writing (os.posix_fallocate;
    where the file system lacks it, by writing zeros over them), so that a full disk is an OSError
    (ENOSPC) now rather than a SIGBUS when a memory map of the file is written later."""
    try:
        os.posix_fallocate(f.fileno(), 0, size)
        return
    except (AttributeError, OSError) as e:  # no posix_fallocate (macOS), or not on this file system
        if isinstance(e, OSError) and e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
    f.seek(0)
    chunk = bytes(1 << 20)
    for start in range(0, size, len(chunk)):
        f.write(chunk[: min(len(chunk), size - start)])
    f.flush()
    os.fsync(f.fileno())


def disk_full_error(e: OSError, where: str, what: str, directory: str | os.PathLike, needed: int) -> UserError | None:
    """For an OSError `e` that is a full disk (ENOSPC, EDQUOT) while writing `what` (about `needed`
    bytes) into `directory`: the one-line UserError saying so, starting with `where` (e.g. `store
    PATH`), with the free space; else None."""
    if e.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    try:
        free = f"{_size(shutil.disk_usage(directory).free)} free"
    except OSError:
        free = "free space unknown"
    return UserError(f"{where}: disk full while writing {what} (needs {_size(needed)}, {free} in {directory}); "
                     f"free some space there and run again")


def _size(n: int) -> str:
    """`n` bytes in words: 3.2 GB, 12.5 MB."""
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def _contains(outer: Path, inner: Path) -> bool:
    return inner == outer or outer in inner.parents


def claim_destination(
    dst: str | os.PathLike,
    flag: str,
    kind: str,
    is_own: Callable[[Path], bool],
    inputs: Iterable[str | os.PathLike] = (),
    directory: bool = False,
) -> Path:
    """Check, before any long work, that the output `dst` (given as `flag`) may be written.

    Allowed: `dst` absent, an empty directory (when `directory`), or `is_own(dst)` (the
    command's own kind of output, `kind`, e.g. "jsmp store"). Refused with a one-line
    UserError: anything else there; `dst` equal to or containing one of `inputs`; a parent
    that cannot be created or written. Returns `dst` as a Path.
    """
    given = Path(dst)
    where = f"{flag} {given}"
    dst = Path(os.path.abspath(given))  # "." and "x/.." get a real name and parent
    resolved = dst.resolve()
    for src in inputs:
        s = Path(src).resolve()
        if _contains(resolved, s):
            what = "is" if s == resolved else "contains"
            raise UserError(f"{where}: {what} the input {src}; writing there would destroy it. Choose another {flag}")
    if dst.is_symlink() or dst.exists():
        if is_own(dst) or (directory and is_empty_dir(dst)):
            pass
        else:
            if dst.is_dir():
                found = "a directory that is not a " + kind + (" (and not empty)" if directory else "")
            else:
                found = "an existing file that is not a " + kind
            raise UserError(f"{where}: {found}; jsmp replaces only its own {kind} outputs. "
                            f"Choose another {flag}, or move that {'directory' if dst.is_dir() else 'file'} away first")
    parent = dst.parent
    shown = given.parent if given.name not in ("", ".", "..") else parent  # as the user wrote it where it can be
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{where}: cannot create its parent directory {shown} ({e.strerror})") from None
    if not parent.is_dir():
        raise UserError(f"{where}: its parent {shown} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{where}: its parent directory {shown} is not writable")
    if dst.exists() and not os.access(dst, os.W_OK):
        raise UserError(f"{where}: exists and is not writable")
    return given
