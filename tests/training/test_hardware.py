"""bf16 is chosen only where the CPU has bf16 instructions and it measures faster."""

from __future__ import annotations

from braintumor.models import create_model
from braintumor.training import hardware


def _tiny():
    return create_model("braintumor-net", image_size=32)


def test_no_bf16_instructions_means_fp32(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "fma"})
    choice, probe = hardware.choose_cpu_precision(_tiny, 32, 4)
    assert choice == "32-true" and "avx512_bf16" in probe["reason"]


def test_bf16_needs_to_be_measurably_faster(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx512_bf16"})
    speeds = {False: 10.0, True: 10.5}  # steps/s: bf16 only 5 % faster -> keep fp32
    monkeypatch.setattr(hardware, "_steps_per_second",
                        lambda model, size, bs, bf16, steps: speeds[bf16])
    assert hardware.choose_cpu_precision(_tiny, 32, 4)[0] == "32-true"
    speeds[True] = 20.0
    choice, probe = hardware.choose_cpu_precision(_tiny, 32, 4)
    assert choice == "bf16-mixed" and probe["bf16_img_s"] == 80.0


def test_hardware_summary_names_cpu_and_torch():
    info = hardware.hardware_summary()
    assert info["cpu"] and info["cpu_cores"] >= 1 and info["torch"]
