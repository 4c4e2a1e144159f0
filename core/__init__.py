"""Computation for the CNN dashboard: data, models, training, evaluation. No UI here."""

import os
import sys
from pathlib import Path

# The project's folder, where the processes `core` starts run from (`python -m core...`).
ROOT = Path(__file__).resolve().parent.parent

# TensorFlow runs convolutions on oneDNN's kernels only on CPUs it counts as built for neural
# networks (AVX512_VNNI, AVX512_BF16, AMX and the like), and on its own slower Eigen kernels
# elsewhere: on a 2-core AVX2 host the fast preset trained at 107 images/s without oneDNN and
# 165 with it, the quick preset at 319 and 445 (docs/BENCHMARKS.md, session 15). So oneDNN is
# asked for in every process that imports `core` (the training CLI, the runs the dashboard
# launches, benchmarks, tests) except the dashboard's own server: there it made classifying
# one upload 1-3 ms slower on that host, and the server trains nothing. The switch has to be
# set before TensorFlow is first imported, which every `core` module that uses it does after
# this package; a value the user set wins.
if "streamlit" not in sys.modules:
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
# TensorFlow's C++ log says at every start what a user cannot act on (the CPU features it was
# built for, oneDNN being on): errors only, as the command lines always asked.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# ... and the lines it writes before it reads the level (oneDNN being on), which
# `core.tflog` holds back from the process's first `import tensorflow`.
from core import tflog  # noqa: E402

tflog.install()
