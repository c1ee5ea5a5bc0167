"""What machine a run is on, and which precision to train in there.

bf16 autocast on a CPU is only a win where the CPU has bf16 instructions (AVX512-BF16 or
AMX) that oneDNN uses; elsewhere it is emulated and slower than fp32. "auto" therefore checks
the flags and then times a few real training steps in both precisions, and picks bf16 only
when it is measurably faster on this machine for this model.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_summary() -> dict:
    info: dict[str, object] = {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_bf16": cpu_supports_bf16(),
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def cpu_supports_bf16() -> bool:
    flags = cpu_flags()
    return torch.backends.mkldnn.is_available() and bool(
        flags & {"avx512_bf16", "amx_bf16"})


def _steps_per_second(model: nn.Module, image_size: int, batch_size: int, bf16: bool,
                      steps: int) -> float:
    x = torch.rand(batch_size, 1, image_size, image_size)
    y = torch.randint(0, 2, (batch_size,))
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up: oneDNN picks kernels on the first call
    best = float("inf")
    for _ in range(steps):
        # The fastest of a few steps: other processes on a shared machine only ever add time.
        t0 = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t0)
    return 1.0 / best


def choose_cpu_precision(make_model: Callable[[], nn.Module], image_size: int,
                         batch_size: int, steps: int = 3
                         ) -> tuple[str, dict]:
    """("bf16-mixed" or "32-true", measurement) for CPU training of ``make_model()``."""
    if not cpu_supports_bf16():
        return "32-true", {"reason": "CPU lacks avx512_bf16/amx_bf16 (or oneDNN)"}
    state = torch.random.get_rng_state()
    try:
        fp32 = _steps_per_second(make_model(), image_size, batch_size, False, steps)
        bf16 = _steps_per_second(make_model(), image_size, batch_size, True, steps)
    finally:
        torch.random.set_rng_state(state)  # the probe must not shift the run's randomness
    choice = "bf16-mixed" if bf16 > 1.1 * fp32 else "32-true"
    return choice, {"fp32_img_s": round(fp32 * batch_size, 1),
                    "bf16_img_s": round(bf16 * batch_size, 1), "chosen": choice}
