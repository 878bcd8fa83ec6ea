"""ONNX Runtime sessions with explicit provider selection.

CUDA is used when it is asked for (or ``auto`` and the installed runtime offers it); a
required CUDA provider that is missing or silently falls back to CPU is an error.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mslesion.services.config import Provider
from mslesion.services.errors import ProviderError

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:  # neither [cpu] nor [gpu] extra installed
        raise ProviderError(
            "ONNX Runtime is not installed: pip install 'mslesion[cpu]' (or '[gpu]' on GPU hosts)"
        ) from exc
    return onnxruntime


def available_providers() -> list[str]:
    """Providers the installed ONNX Runtime build offers."""
    return list(_ort().get_available_providers())


def requested_providers(provider: Provider, device_id: int = 0) -> list[Any]:
    """The provider list to hand to ONNX Runtime for a requested :class:`Provider`."""
    offered = available_providers()
    if provider is Provider.CPU:
        return [CPU]
    if CUDA in offered:
        return [(CUDA, {"device_id": device_id}), CPU]
    if provider is Provider.CUDA:
        raise ProviderError(
            f"CUDA was required but this ONNX Runtime offers only {offered} "
            "(install onnxruntime-gpu, and not onnxruntime beside it)"
        )
    return [CPU]


def create_session(
    path: Path | bytes, provider: Provider, threads: int = 0, device_id: int = 0
) -> Any:
    """Create an inference session from a file or serialised model bytes.

    Logs the provider the session actually runs on.
    """
    ort = _ort()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(
        path if isinstance(path, bytes) else str(path),
        sess_options=options,
        providers=requested_providers(provider, device_id),
    )
    used = session.get_providers()[0]
    name = "<in-memory model>" if isinstance(path, bytes) else path.name
    if provider is Provider.CUDA and used != CUDA:
        raise ProviderError(
            f"CUDA was required but the session for {name} fell back to {used} "
            "(no usable GPU or CUDA libraries)"
        )
    log.info("onnx session %s runs on %s", name, used)
    return session


def session_provider(session: Any) -> str:
    """The provider a session actually runs on."""
    return str(session.get_providers()[0])
