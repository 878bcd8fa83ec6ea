"""What a model was trained on besides its data and seed: the machine and the libraries.

Training is bit-reproducible for a seed only where the floating-point kernels are the same.
PyTorch, oneDNN, OpenBLAS and ONNX Runtime each choose their kernels by the CPU's instruction
set, so one seed gives other weights on an AVX-512 machine than on an AVX2 one (measured
2026-12-07 with the phantom smoke training: other hashes with the kernels pinned to AVX2 on the
same machine, identical hashes run to run). The manifest therefore records what a
reproduction must match, including the variables that pin the kernels where they were set.
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

LIBRARIES = ("torch", "numpy", "scipy", "SimpleITK", "onnxruntime", "onnx", "nilearn")
"""The libraries whose kernels or data reach the trained weights."""

PINNING_VARIABLES = (
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "OPENBLAS_CORETYPE",
    "MKL_CBWR",
    "NPY_DISABLE_CPU_FEATURES",
    "OMP_NUM_THREADS",
)
"""Environment variables that choose the kernels; recorded when set."""


def training_environment(environ: dict[str, str]) -> dict[str, object]:
    """The CPU, thread count, library versions and kernel-pinning variables of this process."""
    import torch

    return {
        "cpu": _cpu_model(),
        "machine": platform.machine(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "libraries": {name: _version(name) for name in LIBRARIES},
        "pinning": {k: environ[k] for k in PINNING_VARIABLES if k in environ},
    }


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"
