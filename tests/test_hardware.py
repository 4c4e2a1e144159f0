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
