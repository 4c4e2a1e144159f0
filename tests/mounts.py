"""Real small and read-only file systems for fault tests: a tmpfs, a read-only bind mount.

Mounting needs root (CI and the development machine run tests as root); elsewhere the
tests that use these skip with the reason. Every mount is undone when its block ends.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
from pathlib import Path

import pytest

# Before anything slow is set up; `_mount` still skips where root may not mount (a container).
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="mounting a tmpfs or a read-only bind needs root"
)


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(
            f"mounting is not permitted here (mount {' '.join(args)}: "
            f"{done.stderr.strip()}); run the test as root"
        )


def _umount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True).returncode:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)  # still in use


@contextlib.contextmanager
def small_disk(path: Path, size: str = "2m"):
    """Mounts a tmpfs of `size` at `path` (created if missing); yields `path`."""
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    try:
        yield path
    finally:
        _umount(path)


@contextlib.contextmanager
def read_only(path: Path, pause_group: int | None = None):
    """Makes the folder `path` read-only for every new open, rename or mkdir through it.

    A read-only bind mount of the folder over itself: `mount -o remount,ro` of a file
    system is refused ("busy") while a training holds its log open for writing; a bind
    mount is not. Files opened before stay writable (the log keeps the child's last
    words); everything done by path afterwards (a status, a checkpoint) fails EROFS.

    Args:
        path: the folder.
        pause_group: a process group writing into `path`, stopped while the mount is
            made: a file it opens for writing between the bind and the remount would be
            on the new mount, which then refuses to turn read-only ("busy").
    """
    with _paused(pause_group):
        _mount("--bind", str(path), str(path))
        try:
            _mount("-o", "remount,bind,ro", str(path))
        except BaseException:
            _umount(path)
            raise
    try:
        yield path
    finally:
        _umount(path)


@contextlib.contextmanager
def _paused(group: int | None):
    if group is not None:
        os.killpg(group, signal.SIGSTOP)
    try:
        yield
    finally:
        if group is not None:
            os.killpg(group, signal.SIGCONT)


def fill(folder: Path, leave: int = 0) -> Path:
    """Writes a filler file into `folder` until at most `leave` bytes stay free."""
    filler = folder / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        while (free := _free(folder) - leave) > 0:
            os.write(fd, b"\0" * min(free, 1 << 20))
    except OSError as err:
        if err.errno != errno.ENOSPC:  # a full disk is what `leave=0` asks for
            raise
    finally:
        os.close(fd)
    return filler


def _free(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize
