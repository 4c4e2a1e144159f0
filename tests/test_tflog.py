"""TensorFlow's first import without the log lines TF_CPP_MIN_LOG_LEVEL cannot reach."""

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

from core import tflog
from tests.conftest import ROOT

ABSL = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
ONEDNN = (
    b"I0000 00:00:1796433677.338049   30338 port.cc:153] oneDNN custom operations are on. You "
    b"may see slightly different numerical results due to floating-point round-off errors from "
    b"different computation orders. To turn them off, set the environment variable "
    b"`TF_ENABLE_ONEDNN_OPTS=0`.\n"
)


def test_only_the_two_lines_are_left_out():
    error = b"E0000 00:00:1796433677.1   30338 cuda_executor.cc:1] failed call to cuInit\n"
    kept = [b"Traceback (most recent call last):\n", error, b"oneDNN custom operations are on.\n"]
    text = ABSL + kept[0] + ONEDNN + kept[1] + ABSL + ONEDNN + kept[2] + b"no newline"
    assert tflog.without_noise(text) == b"".join(kept) + b"no newline"
    assert tflog.without_noise(ABSL.replace(b"\n", b"\r\n") + ONEDNN) == b""


def test_what_else_is_written_meanwhile_comes_back_in_order():
    code = textwrap.dedent(
        f"""\
        import os, sys
        from core import tflog
        print("before", file=sys.stderr)
        with tflog.filtered_stderr():
            os.write(2, {ABSL!r} + b"from C++\\n" + {ONEDNN!r})
            print("from Python", file=sys.stderr)
            print("in the block", flush=True)  # stdout is not held
        print("after", file=sys.stderr)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, timeout=60, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "before\nfrom C++\nfrom Python\nafter\n"
    assert done.stdout == "in the block\n"


def test_a_failed_import_still_says_why_and_leaves_its_loader_as_it_was(tmp_path, capfd):
    module = tmp_path / "broken_runtime.py"
    module.write_text(
        textwrap.dedent(
            f"""\
            import os
            os.write(2, {ABSL + ONEDNN!r} + b"E0000 missing libcuda\\n")
            raise ImportError("no runtime here")
            """
        )
    )
    spec = importlib.util.spec_from_file_location("broken_runtime", module)
    loader = spec.loader
    spec.loader = tflog._QuietLoader(loader)
    imported = importlib.util.module_from_spec(spec)
    with pytest.raises(ImportError, match="no runtime here"):
        spec.loader.exec_module(imported)
    assert capfd.readouterr().err == "E0000 missing libcuda\n"
    assert imported.__loader__ is loader and imported.__spec__.loader is loader


@pytest.mark.parametrize("through_core", [False, True])
def test_importing_tensorflow_through_core_writes_neither_line(through_core):
    code = (
        "import sys\n" + ("import core\n" if through_core else "") + "import tensorflow as tf\n"
        "print(tf.constant([2.0]).numpy()[0], type(tf.__loader__).__name__, "
        "[type(f).__name__ for f in sys.meta_path if 'Quiet' in type(f).__name__])\n"
    )
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.decode().split() == ["2.0", "SourceFileLoader", "[]"]
    if through_core:
        assert done.stderr == b""
    else:  # the lines are there to leave out: this test sees them go
        assert ABSL in done.stderr and b"] oneDNN custom operations are on." in done.stderr
