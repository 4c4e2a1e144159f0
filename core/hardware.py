"""What this machine computes fast: whether mixed bf16 pays off here.

Mixed bf16 halves the fast preset's step time on CPUs with bf16 units (AVX-512 BF16, AMX),
and multiplies it by about 9 on CPUs without them, where oneDNN falls back to slow bf16
convolutions: the fast net trained at 13 images/s in bf16 against 114 in float32 on a
2-core AMD EPYC with AVX2 only (docs/BENCHMARKS.md, session 14). The presets therefore
ask for "auto", which `effective_precision` turns into what this machine runs fast.
"""

import functools
import os

# /proc/cpuinfo flags of bf16 arithmetic: x86 (AVX-512 BF16, AMX) and Arm (the BF16
# extension, a "Features" entry).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # macOS, Windows


def cpu_flags(cpuinfo: str) -> set[str]:
    """Returns the feature flags of the first processor listed in a /proc/cpuinfo text."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


@functools.cache
def has_fast_bf16() -> bool:
    """True when this machine has bf16 arithmetic: a GPU, or a CPU with bf16 units.

    Without /proc/cpuinfo (macOS, Windows) the answer is False: float32 costs at most
    about 2x there, a slow bf16 path about 9x.
    """
    if _has_gpu():
        return True
    try:
        with open("/proc/cpuinfo") as f:
            return bool(cpu_flags(f.read()) & BF16_FLAGS)
    except OSError:
        return False


def effective_precision(precision: str) -> str:
    """Returns the precision a run computes in: "auto" becomes this machine's fast one.

    Args:
        precision: "auto", "float32" or "mixed_bfloat16".

    Returns:
        "mixed_bfloat16" for "auto" where `has_fast_bf16()`, "float32" for "auto"
        elsewhere; any other value unchanged.
    """
    if precision != "auto":
        return precision
    return "mixed_bfloat16" if has_fast_bf16() else "float32"


def precision_warning(precision: str) -> str | None:
    """Returns a sentence for a user who asks for bf16 where it is slow, else None."""
    if precision != "mixed_bfloat16" or has_fast_bf16():
        return None
    return (
        "This CPU has no bf16 units (AVX-512 BF16 or AMX), so mixed_bfloat16 "
        "trains several times slower here than float32 (about 9x for the fast preset). "
        "Choose auto or float32 unless you mean to measure exactly that."
    )


def _has_gpu() -> bool:
    import keras

    if keras.config.backend() != "tensorflow":  # the project's backend; others stay float32
        return False
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))
