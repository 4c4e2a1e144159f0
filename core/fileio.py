"""Atomic file writes (a reader sees the old file or the new one, never a partial one), and
the removal of cache entries that a newer one supersedes."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import time
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to a temporary file beside `path`, fsyncs it, then renames it over.

    The folder is fsynced after the rename too, so that the new name survives a power cut.

    Raises:
        OSError: the disk is full or the folder is not writable; `path` is untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; these files are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flushes a folder's entries (a rename, a new file) to disk.

    File systems that cannot fsync a folder (some network mounts) are skipped: the data
    itself was fsynced already, only the new name may be lost in a power cut there.
    """
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    """Writes `obj` as indented JSON, atomically (see `atomic_write_bytes`)."""
    atomic_write_bytes(path, json.dumps(obj, indent=2, default=_jsonable).encode())


def read_json(path: str | os.PathLike, default=None):
    """Returns the parsed JSON at `path`, or `default` when the file does not exist."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return default


def _jsonable(obj):
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def replace_dir(staging: str | os.PathLike, final: str | os.PathLike) -> None:
    """Puts the finished folder `staging` at `final`, replacing what was there.

    A folder cannot be renamed over a non-empty one, so the old one is moved aside first
    and removed after. `staging` (usually from `mkdtemp`, mode 0700) is made readable by
    other accounts. If another process published `final` in between, its copy stays.
    """
    import shutil
    import time

    staging, final = Path(staging), Path(final)
    staging.chmod(0o755)
    old = final.with_name(f".{final.name}.old-{os.getpid()}-{time.monotonic_ns()}")
    if final.exists():
        os.rename(final, old)
    try:
        os.rename(staging, final)
    except OSError:
        if not final.exists():
            raise
    shutil.rmtree(old, ignore_errors=True)
    fsync_dir(final.parent)


LEGACY_AGE_S = 24 * 3600  # an entry without a source this old was left by an older version


def remove_stale_entries(keep: Path, pattern: str, source_of, source: tuple[str, str]) -> int:
    """Deletes the cache entries beside `keep` that it supersedes or that describe nothing.

    An entry (a file or a folder named by `pattern` in `keep`'s folder) is stale when
    `source_of(entry)` returns `source` (an older state of the same thing), or a source
    whose path no longer exists (a deleted upload), or raises and the entry is older than
    `LEGACY_AGE_S` (written by a version that did not record its source; a younger one may
    be another process's entry still being written).

    Args:
        keep: the entry just written.
        pattern: a glob for the entries of this kind, e.g. `"folder-*"`.
        source_of: reads an entry's `(path, detail)`; raises `OSError` or `ValueError`
            when it cannot.
        source: `keep`'s own `(path, detail)`.

    Returns:
        How many entries were deleted. Entries that cannot be deleted are left.
    """
    removed = 0
    for entry in keep.parent.glob(pattern):
        if entry == keep:
            continue
        try:
            path, detail = source_of(entry)
            stale = (path, detail) == source or not Path(path).exists()
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            try:
                stale = time.time() - entry.stat().st_mtime > LEGACY_AGE_S
            except OSError:
                continue
        if stale:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += not entry.exists()
    return removed


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks, as hex."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
