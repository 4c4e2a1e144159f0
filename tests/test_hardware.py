import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import hardware

# Excerpts of /proc/cpuinfo as three kinds of machine print it.
INTEL_AMX = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile amx_int8
"""
AMD_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx avx2 fma f16c bmi2 vaes
"""
ARM_BF16 = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes sha1 sha2 crc32 atomics fphp asimdhp bf16 i8mm
"""


@pytest.mark.parametrize(
    "cpuinfo, fast",
    [(INTEL_AMX, True), (AMD_AVX2, False), (ARM_BF16, True), ("", False)],
)
def test_bf16_units_are_read_from_the_cpu_flags(cpuinfo, fast):
    assert bool(hardware.cpu_flags(cpuinfo) & hardware.BF16_FLAGS) is fast


def test_flags_come_from_the_first_processor_only():
    two = AMD_AVX2 + "\n" + INTEL_AMX
    assert "avx512_bf16" not in hardware.cpu_flags(two)


@pytest.mark.parametrize("fast, auto", [(True, "mixed_bfloat16"), (False, "float32")])
def test_auto_is_bf16_only_where_bf16_is_fast(monkeypatch, fast, auto):
    monkeypatch.setattr(hardware, "has_fast_bf16", lambda: fast)
    assert hardware.effective_precision("auto") == auto
    # An explicit choice is kept either way.
    assert hardware.effective_precision("float32") == "float32"
    assert hardware.effective_precision("mixed_bfloat16") == "mixed_bfloat16"


def test_asking_for_bf16_where_it_is_slow_gets_a_sentence(monkeypatch):
    monkeypatch.setattr(hardware, "has_fast_bf16", lambda: False)
    warning = hardware.precision_warning("mixed_bfloat16")
    assert "no bf16 units" in warning and "float32" in warning
    assert hardware.precision_warning("float32") is None
    assert hardware.precision_warning("auto") is None
    monkeypatch.setattr(hardware, "has_fast_bf16", lambda: True)
    assert hardware.precision_warning("mixed_bfloat16") is None


def _onednn_in_a_fresh_process(first_imports: str, env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if env_value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = env_value
    code = (
        f"import {first_imports}, os, tensorflow\n"
        "from tensorflow.python.util import _pywrap_util_port\n"
        "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), _pywrap_util_port.IsMklEnabled())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_importing_core_turns_on_onednn_unless_the_user_chose():
    """TensorFlow leaves oneDNN off on CPUs without VNNI/bf16 units (AVX2) unless asked."""
    assert _onednn_in_a_fresh_process("core", None) == "1 True"
    assert _onednn_in_a_fresh_process("core", "0") == "0 False"


def test_the_dashboard_server_keeps_tensorflows_own_choice():
    """Imported after Streamlit (the server), `core` leaves the switch alone."""
    assert _onednn_in_a_fresh_process("streamlit, core", None).startswith("None ")
