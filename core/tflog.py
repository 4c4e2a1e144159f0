"""TensorFlow's import without the log lines that `TF_CPP_MIN_LOG_LEVEL` cannot reach.

Importing TensorFlow 2.21 where oneDNN is on (every AVX-512 host by default, and this
project's command lines on AVX2 ones) writes, twice, before absl's logging is set up and so
whatever `TF_CPP_MIN_LOG_LEVEL` says:

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796433677.338049   30338 port.cc:153] oneDNN custom operations are on. ...

`install` makes the first `import tensorflow` of the process write its standard error (file
descriptor 2, which the C++ log writes to) to a temporary file, then writes back everything
but those lines: an error, a warning or a traceback printed meanwhile still reaches the
terminal, in its order, once the import has ended.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
from contextlib import ExitStack, contextmanager

NOISE = (  # whole lines, as TensorFlow 2.21 writes them
    re.compile(
        rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to "
        rb"STDERR\r?\n"
    ),
    re.compile(rb"I\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on\. .*\r?\n"),
)


def without_noise(text: bytes) -> bytes:
    """`text` without its `NOISE` lines; every other line as it was."""
    lines = text.splitlines(keepends=True)
    return b"".join(line for line in lines if not any(p.fullmatch(line) for p in NOISE))


@contextmanager
def filtered_stderr():
    """Standard error, at the file-descriptor level, held while the block runs and written
    back without `NOISE`. Where it cannot be held (no descriptor 2, no temporary file), the
    block runs as it would without."""
    with ExitStack() as stack:
        try:
            held = stack.enter_context(tempfile.TemporaryFile())
            _flush()
            saved = os.dup(2)
        except OSError:
            held = None
        if held is None:
            yield
            return
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            _flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = without_noise(held.read())
            while kept:
                kept = kept[os.write(2, kept) :]


def _flush():
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):  # no stderr, or a closed one
        pass


class _QuietLoader(importlib.abc.Loader):
    """Runs another loader's `exec_module` under `filtered_stderr`, then gives the module
    its own loader back."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        try:
            with filtered_stderr():
                self.loader.exec_module(module)
        finally:
            module.__spec__.loader = module.__loader__ = self.loader


class _QuietFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        uninstall()  # the first import only
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install() -> None:
    """Quiets the process's first `import tensorflow`, unless it has happened."""
    if "tensorflow" not in sys.modules and not any(
        isinstance(f, _QuietFinder) for f in sys.meta_path
    ):
        sys.meta_path.insert(0, _QuietFinder())


def uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietFinder)]
